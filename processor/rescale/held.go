package rescale

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

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

// heldOut is a record written back to a new input partition.
type heldOut struct {
	id  string
	rec *kgo.Record
}

type topicPartition struct {
	topic     string
	partition int32
}

// backItem is a record to write back, with where it was read in the old
// layout.
type backItem struct {
	out    heldOut
	from   topicPartition // the old input partition
	offset int64
}

// heldRecords turns the held records of the scan into records of the new
// input topics.
func (r *run) heldRecords(sc *scan) ([]backItem, error) {
	sources := processor.InputSources()
	var items []backItem
	for p, hs := range sc.held {
		for _, h := range hs {
			in := -1
			for i, s := range sources {
				if uint8(s) == h.key.Input && i < len(r.inputs) {
					in = i
				}
			}
			if in < 0 {
				return nil, fmt.Errorf("rescale: changelog %q partition %d: a held record of input %d, unknown to this release", r.src, p, h.key.Input)
			}
			rec, err := state.DecodeChangelogHeld(h.value)
			if err != nil {
				return nil, fmt.Errorf("rescale: changelog %q partition %d, held record of input %d offset %d: %w", r.src, p, h.key.Input, h.key.Offset, err)
			}
			id := fmt.Sprintf("%s/%d/%d/%d", r.dst, p, h.key.Input, h.key.Offset)
			items = append(items, r.backItem(id, topicPartition{r.inputs[in].old, p}, h.key.Offset, r.inputs[in].new,
				&kgo.Record{Key: rec.Key, Value: rec.Value, Timestamp: rec.Time}))
		}
	}
	return items, nil
}

// carriedRecords returns the staged records of the internal topics
// (carry.go) as records of the new internal topics.
func (r *run) carriedRecords(ctx context.Context) ([]backItem, error) {
	var items []backItem
	var bad error
	err := r.readCarry(ctx, func(rec *kgo.Record, origin string) {
		topic, p, offset, err := parseOrigin(origin)
		if err != nil {
			bad = errors.Join(bad, err)
			return
		}
		var hs []kgo.RecordHeader
		for _, h := range rec.Headers {
			if h.Key != carryHeader {
				hs = append(hs, h)
			}
		}
		// An internal topic keeps its name.
		items = append(items, r.backItem(r.dst+"/c/"+origin, topicPartition{topic, p}, offset, topic,
			&kgo.Record{Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp, Headers: hs}))
	})
	return items, errors.Join(err, bad)
}

// backItem places rec on the customer's partition of topic under M.
func (r *run) backItem(id string, from topicPartition, offset int64, topic string, rec *kgo.Record) backItem {
	rec.Topic = topic
	rec.Partition = processor.Partitioner(r.cfg.Partitioner).Partition(rec.Key, r.m)
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: heldHeader, Value: []byte(id)})
	return backItem{out: heldOut{id: id, rec: rec}, from: from, offset: offset}
}

// order returns the records per target partition in the order they are
// written: each old input partition's records in offset order (a
// customer's records keep their order: they all come from one old
// partition; held records come before the unconsumed ones), merged across
// old partitions by record time.
func order(items []backItem) map[topicPartition][]heldOut {
	perOld := map[topicPartition]map[topicPartition][]backItem{}
	for _, it := range items {
		tp := topicPartition{it.out.rec.Topic, it.out.rec.Partition}
		if perOld[tp] == nil {
			perOld[tp] = map[topicPartition][]backItem{}
		}
		perOld[tp][it.from] = append(perOld[tp][it.from], it)
	}
	out := map[topicPartition][]heldOut{}
	for tp, byOld := range perOld {
		olds := make([]topicPartition, 0, len(byOld))
		for from, q := range byOld {
			sort.Slice(q, func(i, j int) bool { return q[i].offset < q[j].offset })
			olds = append(olds, from)
		}
		sort.Slice(olds, func(i, j int) bool {
			if olds[i].topic != olds[j].topic {
				return olds[i].topic < olds[j].topic
			}
			return olds[i].partition < olds[j].partition
		})
		for {
			best := -1 // the old partition whose next record is the earliest
			for i, from := range olds {
				q := byOld[from]
				if len(q) > 0 && (best < 0 || q[0].out.rec.Timestamp.Before(byOld[olds[best]][0].out.rec.Timestamp)) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			q := byOld[olds[best]]
			out[tp] = append(out[tp], q[0].out)
			byOld[olds[best]] = q[1:]
		}
	}
	return out
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
// names of the records written back found there.
func (r *run) writtenHeld(ctx context.Context, held map[topicPartition][]heldOut) (map[string]bool, error) {
	var topics []string
	seen := map[string]bool{}
	for tp := range held {
		if !seen[tp.topic] {
			seen[tp.topic] = true
			topics = append(topics, tp.topic)
		}
	}
	listed, err := r.adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("rescale: end offsets of %v: %w", topics, err)
	}
	ends := map[string]map[int32]int64{}
	for tp := range held {
		if o, ok := listed.Lookup(tp.topic, tp.partition); ok && o.Offset > 0 {
			if ends[tp.topic] == nil {
				ends[tp.topic] = map[int32]int64{}
			}
			ends[tp.topic][tp.partition] = o.Offset
		}
	}
	there := map[string]bool{}
	err = r.readRange(ctx, nil, ends, false, func(rec *kgo.Record) {
		for _, h := range rec.Headers {
			if h.Key == heldHeader {
				there[string(h.Value)] = true
			}
		}
	})
	return there, err
}
