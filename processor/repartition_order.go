package processor

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Event-time order of a raw input's internal topic.
//
// The stage writes each raw record with the header rawPartitionHeader: the
// number of the raw partition it came from. A raw partition is taken to be
// in event-time order as much as any input partition is (the assumption the
// merge makes of every co-partitioned partition), so once a worker has seen
// a record of raw partition r stamped t on its internal partition, r
// delivers nothing earlier there: what the internal input can still deliver
// is bounded by the least, over every raw partition (the raw topic's
// partition count, from the metadata), of the highest time seen from it.
// That bound moves with the stream, so the merge stays live under a steady
// raw load; until every raw partition has shown a record (after a start, a
// restart, a new partition), the input falls back to the broker's word
// (repartition_caughtup.go): caught up, stage included.
//
// Nothing of it is persisted. After a restart the bound is unknown until
// every raw partition has shown a record again, and the input is as after a
// start: records wait for the caught-up check or for the bound. Unknown only
// holds records back; it never lets one pass, so restarting from it is safe.
//
// The queue of an internal input gives its records in event-time order
// (offset order among equal times), since records of several raw partitions
// arrive merged by arrival: its head is the earliest record it holds. It
// keeps a FIFO per raw partition and merges their heads (queue.go).

// rawPartitionHeader carries the raw partition number (decimal) of a record
// the stage wrote to an internal topic.
const rawPartitionHeader = "triggerd_raw_partition"

// rawOrder is what a worker knows of the raw partitions behind one internal
// input. It is nil for a co-partitioned input.
type rawOrder struct {
	// seen is, per raw partition, the highest event time seen (unix
	// ms), or noTime.
	seen []int64
	// parts is the raw topic's partition count from the last metadata
	// (the caught-up check); 0 not known yet.
	parts int
	// low caches bound(); valid while !dirty.
	low   int64
	dirty bool
}

// newRawOrder returns the order tracking for input topic, or nil when topic
// is no raw input's internal topic.
func (p *Processor) newRawOrder(topic string) *rawOrder {
	if len(p.cfg.Repartition.Inputs) == 0 || !p.cfg.isInternal(topic) {
		return nil
	}
	return &rawOrder{low: noTime}
}

// note records that raw partition part showed event time ts.
func (o *rawOrder) note(part int, ts int64) {
	for len(o.seen) <= part {
		o.seen = append(o.seen, noTime)
	}
	if ts > o.seen[part] {
		o.seen[part] = ts
		o.dirty = true
	}
}

// setParts sets the raw topic's partition count, from the metadata.
func (o *rawOrder) setParts(n int) {
	if n != o.parts {
		o.parts, o.dirty = n, true
	}
}

// reset forgets what was seen: the records will be polled again (an
// aborted transaction).
func (o *rawOrder) reset() {
	clear(o.seen)
	o.seen, o.low, o.dirty = o.seen[:0], noTime, false
}

// bound is the earliest time the input can still deliver a record it has
// not shown yet: the least of every raw partition's highest time seen, or
// noTime while a raw partition has shown nothing (or the partition count is
// not known).
func (o *rawOrder) bound() int64 {
	if !o.dirty {
		return o.low
	}
	o.dirty = false
	n := max(o.parts, len(o.seen))
	if o.parts == 0 || len(o.seen) < n {
		o.low = noTime
		return o.low
	}
	low := int64(never)
	for _, ts := range o.seen[:n] {
		low = min(low, ts) // noTime (unseen) is the least
	}
	o.low = low
	return low
}

// rawPartitionOf reads the raw partition a record of an internal topic came
// from; ok is false for a record without the header (written by a stage
// that did not add it).
func rawPartitionOf(r *kgo.Record) (int, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if h := &r.Headers[i]; h.Key == rawPartitionHeader {
			n, err := strconv.Atoi(string(h.Value))
			return n, err == nil && n >= 0
		}
	}
	return 0, false
}

// enqueue queues an admitted record: appended for a co-partitioned input;
// for an internal one, in event-time order with the records of its raw
// partition (queue.go), whose progress it moves.
func (in *input) enqueue(q queued) {
	if in.raw == nil {
		in.queue.append(q)
		return
	}
	sub := 0 // no known raw partition
	if part, ok := rawPartitionOf(q.r); ok {
		in.raw.note(part, q.ts)
		sub = part + 1
	}
	in.queue.insert(q, sub)
}

// reloaded puts the held records of an internal input, reloaded from the
// state in offset order, in event-time order, and forgets the raw
// partitions' progress (the records will be polled again).
func (in *input) reloaded() {
	if in.raw == nil {
		return
	}
	in.raw.reset()
	in.queue.sortFirst()
}

// reloaded orders the internal inputs' queues after loadHeld.
func (w *worker) reloaded() {
	for i := range w.inputs {
		w.inputs[i].reloaded()
	}
}
