package rescale

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
)

// The internal topics of raw inputs are recreated with M partitions, but a
// stopped deployment leaves records in them that the workers have not
// consumed: the stage and the workers stop together, and the stage wrote
// (and committed the raw offsets of) records the workers never read. They
// are events before the cut-over and must be applied in the new layout, so
// the rescale carries them: before an internal topic is deleted, its
// records from the workers' committed offset to its end are staged in the
// carry topic "<new changelog>-carry" (one partition), and the staging's
// end is committed in the progress group; after the recreation they are
// written, with the held records (held.go), to the customer's partition
// under M of the new internal topic. Each step is resumable: the staging
// skips what an interrupted run staged (a header names each record), the
// internal topics are deleted only once the staging is marked done, and
// the write skips what is there.

// carryHeader names a staged record's origin: "<topic>/<partition>/<offset>".
const carryHeader = "triggerd_rescale_carry"

// carryTopic is where the unconsumed records of the internal topics wait
// while those are recreated.
func (r *run) carryTopic() string { return r.dst + "-carry" }

// stageCarry stages the unconsumed records of the internal topics not yet
// recreated, once. It returns the records this run staged.
func (r *run) stageCarry(ctx context.Context) (int64, error) {
	var raw []string
	for _, in := range r.inputs {
		if in.raw {
			raw = append(raw, in.old)
		}
	}
	if len(raw) == 0 {
		return 0, nil
	}
	offs, err := r.fetchOffsets(ctx, ProgressGroup(r.cfg))
	if err != nil {
		return 0, fmt.Errorf("rescale: reading the progress of group %q: %w", ProgressGroup(r.cfg), err)
	}
	if o, ok := offs.Lookup(r.carryTopic(), 0); ok && o.Err == nil && o.At >= 0 {
		return 0, nil // staged
	}
	defer func() { r.say("staging done") }()
	// As the internal topics: kept whatever the records' timestamps
	// (time retention would delete a backlog stamped in the past).
	if err := r.waitCreated(ctx, r.carryTopic(), 1, processor.RepartitionTopicConfigs()); err != nil {
		return 0, err
	}
	staged := map[string]bool{}
	if err := r.readCarry(ctx, func(rec *kgo.Record, origin string) { staged[origin] = true }); err != nil {
		return 0, err
	}
	committed, err := r.fetchOffsets(ctx, r.cfg.Group)
	if err != nil {
		return 0, fmt.Errorf("rescale: offsets of group %q: %w", r.cfg.Group, err)
	}
	lso, open, err := r.stableOffsets(ctx, raw...)
	if err != nil {
		return 0, err
	}
	starts, ends := map[string]map[int32]int64{}, map[string]map[int32]int64{}
	lso.Each(func(l kadm.ListedOffset) {
		at := int64(0)
		if c, ok := committed.Lookup(l.Topic, l.Partition); ok && c.Err == nil && c.At > 0 {
			at = c.At
		}
		if at < l.Offset {
			if starts[l.Topic] == nil {
				starts[l.Topic], ends[l.Topic] = map[int32]int64{}, map[int32]int64{}
			}
			starts[l.Topic][l.Partition], ends[l.Topic][l.Partition] = at, l.Offset
		}
	})
	if len(open) > 0 {
		return 0, refused("a transaction is open on the internal topics (%s, still after %s): the repartition stage stopped inside it; "+
			"the broker aborts it after the transaction timeout (kafka.transaction_timeout): run again then", strings.Join(open, ", "), markerPatience)
	}
	w, err := kgo.NewClient(append(r.base,
		kgo.ClientID("triggerd-rescale-carry"),
		kgo.DefaultProduceTopic(r.carryTopic()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return 0, fmt.Errorf("rescale: producer: %w", err)
	}
	defer w.Close()
	var (
		mu       sync.Mutex
		firstErr error
		n        int64
	)
	err = r.readRange(ctx, starts, ends, true, func(rec *kgo.Record) {
		origin := rec.Topic + "/" + strconv.Itoa(int(rec.Partition)) + "/" + strconv.FormatInt(rec.Offset, 10)
		if staged[origin] {
			return
		}
		n++
		out := &kgo.Record{Partition: 0, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp,
			Headers: append(append([]kgo.RecordHeader(nil), rec.Headers...), kgo.RecordHeader{Key: carryHeader, Value: []byte(origin)})}
		// Not ctx: see copy.
		w.Produce(context.Background(), out, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			}
		})
	})
	if err != nil {
		return n, err
	}
	if err := w.Flush(ctx); err != nil {
		return n, err
	}
	mu.Lock()
	err = firstErr
	mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("rescale: staging the internal topics' records in %q: %w", r.carryTopic(), err)
	}
	end, err := r.adm.ListEndOffsets(ctx, r.carryTopic())
	if err != nil {
		return n, fmt.Errorf("rescale: end offsets of %q: %w", r.carryTopic(), err)
	}
	var mark kadm.Offsets
	end.Each(func(o kadm.ListedOffset) { mark.AddOffset(r.carryTopic(), o.Partition, o.Offset, -1) })
	return n, r.commit(ctx, ProgressGroup(r.cfg), mark)
}

// readCarry calls fn for every staged record with its origin; none when
// nothing was staged.
func (r *run) readCarry(ctx context.Context, fn func(rec *kgo.Record, origin string)) error {
	n, err := r.partitions(ctx, r.carryTopic())
	if err != nil || n == 0 {
		return err
	}
	end, err := r.adm.ListEndOffsets(ctx, r.carryTopic())
	if err == nil {
		err = end.Error()
	}
	if err != nil {
		return fmt.Errorf("rescale: end offsets of %q: %w", r.carryTopic(), err)
	}
	first, err := r.adm.ListStartOffsets(ctx, r.carryTopic())
	if err == nil {
		err = first.Error()
	}
	if err != nil {
		return fmt.Errorf("rescale: start offsets of %q: %w", r.carryTopic(), err)
	}
	ends := map[string]map[int32]int64{}
	var gone error
	end.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			ends[o.Topic] = map[int32]int64{o.Partition: o.Offset}
		}
		if f, ok := first.Lookup(o.Topic, o.Partition); ok && f.Offset > 0 {
			gone = fmt.Errorf("rescale: the carry topic %q lost its first %d records (retention or deletion): "+
				"the internal topics' unconsumed records staged there cannot be written back", o.Topic, f.Offset)
		}
	})
	if gone != nil {
		return gone
	}
	return r.readRange(ctx, nil, ends, false, func(rec *kgo.Record) {
		for _, h := range rec.Headers {
			if h.Key == carryHeader {
				fn(rec, string(h.Value))
				return
			}
		}
	})
}

// parseOrigin takes a carry origin apart.
func parseOrigin(origin string) (topic string, partition int32, offset int64, err error) {
	parts := strings.Split(origin, "/")
	if len(parts) != 3 {
		return "", 0, 0, fmt.Errorf("rescale: carried record origin %q: not topic/partition/offset", origin)
	}
	p, err1 := strconv.ParseInt(parts[1], 10, 32)
	o, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return "", 0, 0, fmt.Errorf("rescale: carried record origin %q: %w", origin, err)
	}
	return parts[0], int32(p), o, nil
}

// readRange reads each listed partition from starts (the log start when
// absent) to ends (exclusive), calling fn for every data record in offset
// order per partition.
func (r *run) readRange(ctx context.Context, starts, ends map[string]map[int32]int64, committed bool, fn func(*kgo.Record)) error {
	from := map[string]map[int32]kgo.Offset{}
	left := map[string]map[int32]int64{}
	for t, ps := range ends {
		for p, e := range ps {
			s, ok := starts[t][p]
			if ok && s >= e || e <= 0 {
				continue
			}
			if from[t] == nil {
				from[t], left[t] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			from[t][p] = kgo.NewOffset().AtStart()
			if ok {
				from[t][p] = kgo.NewOffset().At(s)
			}
			left[t][p] = e
		}
	}
	if len(left) == 0 {
		return nil
	}
	// Records before the log start are gone: never wait for them.
	var topics []string
	for t := range left {
		topics = append(topics, t)
	}
	first, err := r.adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = first.Error()
	}
	if err != nil {
		return fmt.Errorf("rescale: start offsets of %v: %w", topics, err)
	}
	first.Each(func(o kadm.ListedOffset) {
		if e, ok := left[o.Topic][o.Partition]; ok && o.Offset >= e {
			delete(left[o.Topic], o.Partition)
			delete(from[o.Topic], o.Partition)
			if len(left[o.Topic]) == 0 {
				delete(left, o.Topic)
				delete(from, o.Topic)
			}
		}
	})
	if len(left) == 0 {
		return nil
	}
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(append(r.base,
		kgo.ClientID("triggerd-rescale-read-inputs"),
		kgo.ConsumePartitions(from),
		kgo.FetchIsolationLevel(iso),
		// Markers come back, so that the read sees the end.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("rescale: reading client: %w", err)
	}
	defer cl.Close()
	for len(left) > 0 {
		pollCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
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
			return fmt.Errorf("rescale: reading: %w", ferr)
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			end, ok := left[rec.Topic][rec.Partition]
			if !ok || rec.Offset >= end {
				return
			}
			if !rec.Attrs.IsControl() {
				fn(rec)
			}
			if rec.Offset >= end-1 {
				delete(left[rec.Topic], rec.Partition)
				if len(left[rec.Topic]) == 0 {
					delete(left, rec.Topic)
				}
			}
		})
	}
	return nil
}
