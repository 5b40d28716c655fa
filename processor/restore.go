package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/state"
)

// restoreFlushEvery bounds the restore batch so memory stays flat on a long
// replay.
const restoreFlushEvery = 20000

// restore catches partition part's local state up with its changelog
// partition: it replays from the offset after the one the local state
// reflects to the changelog's last stable offset. Records of aborted
// transactions are skipped (read_committed); control records are kept so
// that the loop sees every offset up to the end and knows it is done.
//
// It returns the partition handle to use from now on (a new one when local
// state had to be dropped).
func (p *Processor) restore(ctx context.Context, part int32, sp *state.Partition) (*state.Partition, error) {
	if err := p.catchUp(ctx, part, &sp); err != nil {
		return nil, err
	}
	return sp, nil
}

func (p *Processor) catchUp(ctx context.Context, part int32, spp **state.Partition) error {
	sp := *spp
	offs, err := sp.Offsets()
	if err != nil {
		return err
	}
	from := offs.Persisted + 1
	ends, err := p.adm.ListEndOffsets(ctx, p.cfg.Topics.Changelog)
	if err != nil {
		return &sessionError{fmt.Errorf("processor: changelog end offsets: %w", err)}
	}
	end, ok := ends.Lookup(p.cfg.Topics.Changelog, part)
	if !ok || end.Err != nil {
		return &sessionError{fmt.Errorf("processor: changelog %s partition %d: no end offset: %v", p.cfg.Topics.Changelog, part, end.Err)}
	}
	if from >= end.Offset {
		if from > end.Offset {
			// Local state claims more than Kafka has: the changelog
			// was recreated or truncated. Kafka is the truth.
			p.log.Warn("local state is ahead of the changelog; dropping it and restoring from the start",
				zap.Int32("partition", part), zap.Int64("local", from-1), zap.Int64("changelog_end", end.Offset))
			if err := p.store.DropPartition(part); err != nil {
				return err
			}
			sp = p.store.Partition(part)
			if err := sp.Err(); err != nil {
				return err
			}
			*spp = sp
			from = 0
		} else {
			return nil
		}
	}
	base, err := baseOpts(&p.cfg, p.log)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(base,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.Topics.Changelog: {part: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("processor: restore client: %w", err)
	}
	defer cl.Close()

	p.m.restoring.Inc()
	defer p.m.restoring.Dec()
	restored := p.m.restored.WithLabelValues(strconv.Itoa(int(part)))
	left := p.m.restoreLeft.WithLabelValues(strconv.Itoa(int(part)))
	left.Set(float64(end.Offset - from))
	defer left.Set(0)
	started, lastLog := time.Now(), time.Now()
	var n, pending int64
	last := from - 1
	atLeastOnce := p.cfg.Guarantee == AtLeastOnce
	var open []*kgo.Record // at-least-once: the records of a batch not closed yet
	apply := func(r *kgo.Record) error {
		if err := sp.ApplyChangelog(r.Key, r.Value, r.Offset); err != nil {
			return err
		}
		n++
		pending++
		if pending >= restoreFlushEvery {
			if err := sp.FlushRestore(); err != nil {
				return err
			}
			restored.Add(float64(pending))
			left.Set(float64(end.Offset - 1 - last))
			pending = 0
		}
		return nil
	}
	p.log.Info("restoring partition from changelog", zap.Int32("partition", part), zap.Int64("from", from), zap.Int64("to", end.Offset))
	lastRecord := time.Now()
	var stall stallLog
	for last < end.Offset-1 {
		pollCtx, cancel := context.WithTimeout(ctx, restoreStallCheck)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			return &sessionError{fmt.Errorf("processor: restoring partition %d: %w", part, ferr)}
		}
		if fetches.NumRecords() == 0 {
			// Bounded: explainStall ends the wait (a new session)
			// where the processor can, and says who can otherwise.
			if err := p.explainStall(ctx, part, last, end.Offset, time.Since(lastRecord), &stall); err != nil {
				return err
			}
			continue
		}
		lastRecord = time.Now()
		// A long restore is progress, not a hang: /healthz stays up.
		p.lastCycle.Store(lastRecord.UnixNano())
		for _, r := range fetches.Records() {
			last = r.Offset
			if r.Attrs.IsControl() {
				continue
			}
			if !atLeastOnce {
				if err := apply(r); err != nil {
					return err
				}
				continue
			}
			// At-least-once: a batch counts once its closing
			// offsets record is there (see Repair).
			open = append(open, r)
			if state.IsBatchEnd(r.Key) {
				for _, r := range open {
					if err := apply(r); err != nil {
						return err
					}
				}
				open = open[:0]
			}
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			p.log.Info("restore progress", zap.Int32("partition", part), zap.Int64("records", n),
				zap.Int64("remaining_offsets", end.Offset-1-last))
		}
	}
	if err := sp.FlushRestore(); err != nil {
		return err
	}
	if len(open) > 0 {
		if err := p.repairCut(ctx, part, sp, open); err != nil {
			return err
		}
	}
	restored.Add(float64(pending))
	secs := time.Since(started).Seconds()
	p.log.Info("restored partition from changelog", zap.Int32("partition", part), zap.Int64("records", n),
		zap.Float64("seconds", secs), zap.Float64("records_per_second", float64(n)/max(secs, 1e-9)))
	return nil
}

// restoreStallCheck is how long a restore waits for the changelog's next
// records before it says why it is waiting (restorewait.go).
const restoreStallCheck = 5 * time.Second

// repairCut deals with a changelog that ends in a batch a crash cut short
// (at-least-once mode): the restore did not apply it, and the input that
// made it will be processed again. It writes, after the cut records, the
// committed values of their keys and an offsets record, so that a later
// restore from further back, which meets the cut records followed by a
// closing offsets record, ends in the same state as this one.
func (p *Processor) repairCut(ctx context.Context, part int32, sp *state.Partition, cut []*kgo.Record) error {
	keys := make([][]byte, len(cut))
	for i, r := range cut {
		keys[i] = r.Key
	}
	p.log.Warn("the changelog ends in a batch a crash cut short; it is not applied (its input is processed again) and is overwritten",
		zap.Int32("partition", part), zap.Int("records", len(cut)), zap.Int64("first_offset", cut[0].Offset))
	var recs []*kgo.Record
	if err := sp.Repair(keys, func(key, value []byte) error {
		recs = append(recs, &kgo.Record{Topic: p.cfg.Topics.Changelog, Partition: part,
			Key: append([]byte(nil), key...), Value: append([]byte(nil), value...)})
		return nil
	}); err != nil {
		return err
	}
	reqCtx, cancel := context.WithTimeout(ctx, p.cfg.TransactionTimeout)
	defer cancel()
	if err := p.cl.ProduceSync(reqCtx, recs...).FirstErr(); err != nil {
		return &sessionError{fmt.Errorf("processor: repairing the changelog of partition %d: %w", part, err)}
	}
	p.m.changelogRepairs.Inc()
	return nil
}
