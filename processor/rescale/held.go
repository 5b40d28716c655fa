package rescale

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/state"
)

// Held records are input records a worker read but has not applied yet:
// they wait for another input to catch up (event-time merge). Their keys
// name an old input partition and offset, which the new layout does not
// read, so they cannot move in the changelog. They go back where the new
// layout reads first: to the customer's partition under M of the new input
// topic (the co-partitioned input's "<topic>-r<K>", the recreated internal
// topic of a raw input), before the workers' group is positioned at
// offset 0 there. A worker of the new layout reads them as it read them
// in the old one, holds them again if they still wait, and applies them
// before anything that comes after the cut-over.

// heldHeader marks a record a rescale wrote back to an input topic. Its
// value names the held record ("<new changelog>/<old partition>/<input>/
// <offset>"): a rerun reads the target partitions, finds what an
// interrupted run wrote, and writes only the rest, so none is written
// twice. Workers ignore headers.
const heldHeader = "triggerd_rescale_held"

// heldValue is a held record as the old changelog holds it.
type heldValue struct {
	key   state.ChangelogKey
	value []byte
}

// heldOut is a held record as it is written to a new input partition.
type heldOut struct {
	id  string
	rec *kgo.Record
}

type topicPartition struct {
	topic     string
	partition int32
}

// heldRecords turns the held records of the scan into records of the new
// input topics, per target partition in the order they are written:
// each old partition's records in offset order (a customer's records keep
// their order: they all come from one old partition), merged across old
// partitions by record time.
func (r *run) heldRecords(sc *scan) (map[topicPartition][]heldOut, int64, error) {
	sources := processor.InputSources()
	partitioner := processor.Partitioner(r.cfg.Partitioner)
	type item struct {
		out heldOut
		ts  time.Time
	}
	// per target, per old partition: the records in offset order
	perOld := map[topicPartition]map[int32][]item{}
	var n int64
	olds := make([]int32, 0, len(sc.held))
	for p := range sc.held {
		olds = append(olds, p)
	}
	sort.Slice(olds, func(i, j int) bool { return olds[i] < olds[j] })
	for _, p := range olds {
		hs := make([]heldValue, 0, len(sc.held[p]))
		for _, h := range sc.held[p] {
			hs = append(hs, h)
		}
		sort.Slice(hs, func(i, j int) bool {
			if hs[i].key.Input != hs[j].key.Input {
				return hs[i].key.Input < hs[j].key.Input
			}
			return hs[i].key.Offset < hs[j].key.Offset
		})
		for _, h := range hs {
			in := -1
			for i, s := range sources {
				if uint8(s) == h.key.Input && i < len(r.inputs) {
					in = i
				}
			}
			if in < 0 {
				return nil, 0, fmt.Errorf("rescale: changelog %q partition %d: a held record of input %d, unknown to this release", r.src, p, h.key.Input)
			}
			rec, err := state.DecodeChangelogHeld(h.value)
			if err != nil {
				return nil, 0, fmt.Errorf("rescale: changelog %q partition %d, held record of input %d offset %d: %w", r.src, p, h.key.Input, h.key.Offset, err)
			}
			id := fmt.Sprintf("%s/%d/%d/%d", r.dst, p, h.key.Input, h.key.Offset)
			tp := topicPartition{r.inputs[in].new, partitioner.Partition(rec.Key, r.m)}
			if perOld[tp] == nil {
				perOld[tp] = map[int32][]item{}
			}
			perOld[tp][p] = append(perOld[tp][p], item{ts: rec.Time, out: heldOut{id: id, rec: &kgo.Record{
				Topic: tp.topic, Partition: tp.partition, Key: rec.Key, Value: rec.Value, Timestamp: rec.Time,
				Headers: []kgo.RecordHeader{{Key: heldHeader, Value: []byte(id)}},
			}}})
			n++
		}
	}
	out := map[topicPartition][]heldOut{}
	for tp, byOld := range perOld {
		for {
			// the old partition whose next record is the earliest
			best := int32(-1)
			for _, p := range olds {
				q := byOld[p]
				if len(q) > 0 && (best < 0 || q[0].ts.Before(byOld[best][0].ts)) {
					best = p
				}
			}
			if best < 0 {
				break
			}
			out[tp] = append(out[tp], byOld[best][0].out)
			byOld[best] = byOld[best][1:]
		}
	}
	return out, n, nil
}

// writeHeld writes the held records to the new input partitions, skipping
// those an interrupted run wrote already. An interrupted write leaves a
// prefix of each partition's records (the producer is idempotent and
// keeps the order), so a rerun appends the rest in the same order. It
// returns the records this run wrote.
func (r *run) writeHeld(ctx context.Context, held map[topicPartition][]heldOut) (int64, error) {
	if len(held) == 0 {
		return 0, nil
	}
	there, err := r.writtenHeld(ctx, held)
	if err != nil {
		return 0, err
	}
	w, err := kgo.NewClient(append(r.base,
		kgo.ClientID("triggerd-rescale-held"),
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
		written  int64
	)
	for _, recs := range held {
		for _, h := range recs {
			if there[h.id] {
				continue
			}
			written++
			// Not ctx: see copy.
			w.Produce(context.Background(), h.rec, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			})
		}
	}
	if err := w.Flush(ctx); err != nil {
		return written, err
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return written, fmt.Errorf("rescale: writing the held records: %w", firstErr)
	}
	return written, nil
}

// writtenHeld reads the target partitions to their ends and returns the
// names of the held records found there.
func (r *run) writtenHeld(ctx context.Context, held map[topicPartition][]heldOut) (map[string]bool, error) {
	var topics []string
	seen := map[string]bool{}
	for tp := range held {
		if !seen[tp.topic] {
			seen[tp.topic] = true
			topics = append(topics, tp.topic)
		}
	}
	ends, err := r.adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("rescale: end offsets of %v: %w", topics, err)
	}
	left := map[string]map[int32]int64{}        // the end still to reach
	starts := map[string]map[int32]kgo.Offset{} // where to read from
	for tp := range held {
		o, ok := ends.Lookup(tp.topic, tp.partition)
		if !ok || o.Offset <= 0 {
			continue
		}
		if left[tp.topic] == nil {
			left[tp.topic], starts[tp.topic] = map[int32]int64{}, map[int32]kgo.Offset{}
		}
		left[tp.topic][tp.partition] = o.Offset
		starts[tp.topic][tp.partition] = kgo.NewOffset().AtStart()
	}
	there := map[string]bool{}
	if len(left) == 0 {
		return there, nil
	}
	cl, err := kgo.NewClient(append(r.base,
		kgo.ClientID("triggerd-rescale-held-read"),
		kgo.ConsumePartitions(starts),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("rescale: input client: %w", err)
	}
	defer cl.Close()
	for len(left) > 0 {
		pollCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, fmt.Errorf("rescale: reading the new input topics: %w", ferr)
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			for _, h := range rec.Headers {
				if h.Key == heldHeader {
					there[string(h.Value)] = true
				}
			}
			if end, ok := left[rec.Topic][rec.Partition]; ok && rec.Offset >= end-1 {
				delete(left[rec.Topic], rec.Partition)
				if len(left[rec.Topic]) == 0 {
					delete(left, rec.Topic)
				}
			}
		})
	}
	return there, nil
}
