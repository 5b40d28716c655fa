package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/state"
)

// restoreFlushEvery bounds the restore batch so memory stays flat on a long
// replay.
const restoreFlushEvery = 20000

// restoreParallelism bounds the partitions whose fetched records are applied
// at once: each applies to a Pebble batch of its own of up to
// restoreFlushEvery records.
const restoreParallelism = 4

// restoring is one partition's restore in progress: it catches partition
// part's local state up with its changelog partition, replaying from the
// offset after the one the local state reflects to the changelog's last
// stable offset (end, when the restore started). Records of aborted
// transactions are skipped (read_committed); control records are kept so
// that the restore sees every offset up to the end and knows it is done.
type restoring struct {
	part      int32
	sp        *state.Partition // a new handle when the local state had to be dropped
	from, end int64
	last      int64 // offset of the last record seen
	// wholeBatches: apply a batch only once its closing offsets record is
	// there (at-least-once; see Repair). open holds the batch not closed
	// yet.
	wholeBatches bool
	open         []*kgo.Record
	fetched      []*kgo.Record // this poll's records, in offset order

	n, pending int64 // records applied; applied since the last flush
	restored   prometheus.Counter
	left       prometheus.Gauge
	started    time.Time
	lastRecord time.Time // when the last records came, or the start
	lastLog    time.Time
	lastWait   time.Time // when explainStall last ran
	stall      stallLog
	done       bool
}

// restoreAll restores partitions parts from the changelog and returns their
// handles, in the same order. One client reads every changelog partition
// that is behind, and the records each poll brings are applied up to
// restoreParallelism partitions at once: a partition's restore touches only
// its own state, so they are independent. A partition is done once it has
// seen every offset below its end; its fetches are paused then.
func (p *Processor) restoreAll(ctx context.Context, parts []int32) ([]*state.Partition, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	ends, err := p.adm.ListEndOffsets(ctx, p.cfg.Topics.Changelog)
	if err != nil {
		return nil, &sessionError{fmt.Errorf("processor: changelog end offsets: %w", err)}
	}
	rs := make([]*restoring, len(parts))
	behind := map[int32]*restoring{}
	for i, part := range parts {
		r, err := p.startRestore(part, ends)
		if err != nil {
			return nil, err
		}
		rs[i] = r
		if !r.done {
			behind[part] = r
		}
	}
	if len(behind) > 0 {
		if err := p.replay(ctx, behind); err != nil {
			return nil, err
		}
	}
	out := make([]*state.Partition, len(rs))
	for i, r := range rs {
		out[i] = r.sp
	}
	return out, nil
}

// startRestore opens partition part's state and finds where its restore
// starts and ends; the restore is done at once when the state is caught up.
func (p *Processor) startRestore(part int32, ends kadm.ListedOffsets) (*restoring, error) {
	sp := p.store.Partition(part)
	if err := sp.Err(); err != nil {
		return nil, err
	}
	offs, err := sp.Offsets()
	if err != nil {
		return nil, err
	}
	r := &restoring{part: part, sp: sp, from: offs.Persisted + 1, wholeBatches: p.g.closesBatches()}
	end, ok := ends.Lookup(p.cfg.Topics.Changelog, part)
	if !ok || end.Err != nil {
		return nil, &sessionError{fmt.Errorf("processor: changelog %s partition %d: no end offset: %v", p.cfg.Topics.Changelog, part, end.Err)}
	}
	r.end, r.last = end.Offset, r.from-1
	switch {
	case r.from == r.end:
		r.done = true
	case r.from > r.end:
		// Local state claims more than Kafka has: the changelog
		// was recreated or truncated. Kafka is the truth.
		p.log.Warn("local state is ahead of the changelog; dropping it and restoring from the start",
			zap.Int32("partition", part), zap.Int64("local", r.from-1), zap.Int64("changelog_end", r.end))
		if err := p.store.DropPartition(part); err != nil {
			return nil, err
		}
		r.sp = p.store.Partition(part)
		if err := r.sp.Err(); err != nil {
			return nil, err
		}
		r.from, r.last = 0, -1
		r.done = r.end == 0
	}
	return r, nil
}

// replay reads the changelog partitions of behind with one client until
// each is done.
func (p *Processor) replay(ctx context.Context, behind map[int32]*restoring) error {
	consume := map[int32]kgo.Offset{}
	for part, r := range behind {
		consume[part] = kgo.NewOffset().At(r.from)
	}
	base, err := baseOpts(&p.cfg, p.log)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(base,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.Topics.Changelog: consume}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("processor: restore client: %w", err)
	}
	defer cl.Close()

	now := time.Now()
	for part, r := range behind {
		pl := strconv.Itoa(int(part))
		r.restored, r.left = p.m.restored.WithLabelValues(pl), p.m.restoreLeft.WithLabelValues(pl)
		r.left.Set(float64(r.end - r.from))
		r.started, r.lastRecord, r.lastLog = now, now, now
		p.m.restoring.Inc()
		p.log.Info("restoring partition from changelog", zap.Int32("partition", part), zap.Int64("from", r.from), zap.Int64("to", r.end))
	}
	defer func() {
		for _, r := range behind {
			if !r.done {
				p.m.restoring.Dec()
				r.left.Set(0)
			}
		}
	}()
	for remaining := len(behind); remaining > 0; {
		pollCtx, cancel := context.WithTimeout(ctx, restoreStallCheck)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(_ string, part int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("processor: restoring partition %d: %w", part, err)
			}
		})
		if ferr != nil {
			return &sessionError{ferr}
		}
		var got []*restoring
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			r := behind[fp.Partition]
			if r == nil || r.done || len(fp.Records) == 0 {
				return // a partition done meanwhile: its fetches are paused
			}
			if len(r.fetched) == 0 {
				got = append(got, r)
			}
			r.fetched = append(r.fetched, fp.Records...)
		})
		now := time.Now()
		if len(got) > 0 {
			// A long restore is progress, not a hang: /healthz stays up.
			p.lastCycle.Store(now.UnixNano())
		}
		if err := eachLimited(restoreParallelism, got, func(r *restoring) error {
			recs := r.fetched
			r.fetched, r.lastRecord = nil, now
			if err := r.apply(recs); err != nil {
				return err
			}
			if r.last >= r.end-1 {
				return p.finishRestore(ctx, r)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, r := range got {
			if r.done {
				remaining--
				cl.PauseFetchPartitions(map[string][]int32{p.cfg.Topics.Changelog: {r.part}})
			}
		}
		for _, r := range behind {
			if r.done {
				continue
			}
			// Bounded: explainStall ends the wait (a new session)
			// where the processor can, and says who can otherwise.
			if waited := now.Sub(r.lastRecord); waited >= restoreStallCheck && now.Sub(r.lastWait) >= restoreStallCheck {
				r.lastWait = now
				if err := p.explainStall(ctx, r.part, r.last, r.end, waited, &r.stall); err != nil {
					return err
				}
			}
			if now.Sub(r.lastLog) > 5*time.Second {
				r.lastLog = now
				p.log.Info("restore progress", zap.Int32("partition", r.part), zap.Int64("records", r.n),
					zap.Int64("remaining_offsets", r.end-1-r.last))
			}
		}
	}
	return nil
}

// apply applies a poll's records of the partition, in offset order.
func (r *restoring) apply(recs []*kgo.Record) error {
	for _, rec := range recs {
		r.last = rec.Offset
		if rec.Attrs.IsControl() {
			continue
		}
		if !r.wholeBatches {
			if err := r.applyOne(rec); err != nil {
				return err
			}
			continue
		}
		// At-least-once: a batch counts once its closing offsets
		// record is there (see Repair).
		r.open = append(r.open, rec)
		if state.IsBatchEnd(rec.Key) {
			for _, rec := range r.open {
				if err := r.applyOne(rec); err != nil {
					return err
				}
			}
			r.open = r.open[:0]
		}
	}
	return nil
}

func (r *restoring) applyOne(rec *kgo.Record) error {
	if err := r.sp.ApplyChangelog(rec.Key, rec.Value, rec.Offset); err != nil {
		return err
	}
	r.n++
	r.pending++
	if r.pending >= restoreFlushEvery {
		if err := r.sp.FlushRestore(); err != nil {
			return err
		}
		r.restored.Add(float64(r.pending))
		r.left.Set(float64(r.end - 1 - r.last))
		r.pending = 0
	}
	return nil
}

// finishRestore flushes a partition that has seen every offset below its
// end, and repairs a changelog that ends in a batch a crash cut short.
func (p *Processor) finishRestore(ctx context.Context, r *restoring) error {
	if err := r.sp.FlushRestore(); err != nil {
		return err
	}
	if len(r.open) > 0 {
		if err := p.repairCut(ctx, r.part, r.sp, r.open); err != nil {
			return err
		}
	}
	r.restored.Add(float64(r.pending))
	r.done = true
	p.m.restoring.Dec()
	r.left.Set(0)
	secs := time.Since(r.started).Seconds()
	p.log.Info("restored partition from changelog", zap.Int32("partition", r.part), zap.Int64("records", r.n),
		zap.Float64("seconds", secs), zap.Float64("records_per_second", float64(r.n)/max(secs, 1e-9)))
	return nil
}

// eachLimited calls fn for every item, at most limit at once, and returns
// the first error. Every call has returned when it returns.
func eachLimited[T any](limit int, items []T, fn func(T) error) error {
	if len(items) == 1 {
		return fn(items[0])
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		slots    = make(chan struct{}, limit)
	)
	for _, it := range items {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := fn(it); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
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
