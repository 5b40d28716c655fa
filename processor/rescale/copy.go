package rescale

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/state"
)

// copy writes, from from[p] on, every record that is the last of its key
// to the customer's new partition, commits the progress after each flushed
// chunk, and ends every new partition with the offsets record (also written
// every OffsetsEvery records of a partition). It returns the records
// written.
func (r *run) copy(ctx context.Context, sc *scan, from map[int32]int64, offs state.Offsets) (int64, error) {
	w, err := kgo.NewClient(append(r.base,
		kgo.ClientID("triggerd-rescale-write"),
		kgo.DefaultProduceTopic(r.dst),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(100_000),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return 0, fmt.Errorf("rescale: producer: %w", err)
	}
	defer w.Close()
	offsValue := state.AppendChangelogOffsets(nil, offs)
	partitioner := processor.Partitioner(r.cfg.Partitioner)

	var (
		mu       sync.Mutex
		firstErr error
		inFlight sync.WaitGroup
	)
	promise := func(_ *kgo.Record, err error) {
		defer inFlight.Done()
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	var written, customers int64
	sincOffs := make([]int, r.m)
	produce := func(rec *kgo.Record) {
		// Not ctx: a record is never dropped by a cancel between its
		// produce and the flush that confirms it; an interrupted run
		// does not commit (below), so its records are written again.
		inFlight.Add(1)
		w.Produce(context.Background(), rec, promise)
		written++
	}
	writeOffsets := func(q int32) {
		produce(&kgo.Record{Partition: q, Key: state.OffsetsKey(), Value: offsValue})
		sincOffs[q] = 0
	}
	pos := map[int32]int64{} // per old partition: the next offset to copy
	chunk := 0
	prog := r.reporter("copying", sc.total)
	defer prog.stop()
	flushCommit := func() error {
		if err := w.Flush(ctx); err != nil {
			return err
		}
		inFlight.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		mu.Lock()
		err := firstErr
		mu.Unlock()
		if err != nil {
			return fmt.Errorf("rescale: writing %q: %w", r.dst, err)
		}
		var c kadm.Offsets
		for p, o := range pos {
			c.AddOffset(r.src, p, o, -1)
		}
		if len(c) > 0 {
			if err := r.commit(ctx, ProgressGroup(r.cfg), c); err != nil {
				return err
			}
		}
		chunk = 0
		if r.opt.OnCommit != nil {
			r.opt.OnCommit()
		}
		return nil
	}
	_, err = r.readChangelog(ctx, from, sc.ends, func(rec *kgo.Record) error {
		pos[rec.Partition] = rec.Offset + 1
		key := string(rec.Key)
		at, ok := sc.last[key]
		if !ok && (rec.Key[0] == 'c' || rec.Key[0] == 'r') {
			return fmt.Errorf("rescale: changelog %q partition %d offset %d: a record the first pass did not see", r.src, rec.Partition, rec.Offset)
		}
		if ok && (at == rec.Offset || at == -(rec.Offset+1)) {
			k, err := state.ParseChangelogKey(rec.Key)
			if err != nil {
				return err
			}
			q := partitioner.Partition([]byte(k.Customer), r.m)
			produce(&kgo.Record{Partition: q, Key: rec.Key, Value: rec.Value})
			if k.Kind == state.RecordCustomer && at >= 0 {
				customers++
				prog.customers(customers)
			}
			if sincOffs[q]++; sincOffs[q] >= r.opt.OffsetsEvery {
				writeOffsets(q)
			}
			chunk++
		}
		if chunk >= r.opt.ChunkRecords {
			return flushCommit()
		}
		return nil
	}, prog.set)
	if err != nil {
		return written, err
	}
	for q := range r.m {
		writeOffsets(q)
	}
	// The positions of partitions read to the end.
	for p, e := range sc.ends {
		pos[p] = e
	}
	return written, flushCommit()
}
