package processor

import "slices"

// An input's queue: the records polled and not processed yet.
//
// A co-partitioned input's records are processed in offset order, so its
// queue is one FIFO. The internal topic of a raw input merges raw partitions
// by arrival, and its records are processed in event-time order
// (repartition_order.go). Each raw partition is in time order, as any input
// partition is taken to be, so that queue keeps one FIFO per raw partition
// and its earliest record is the least of their heads by (time, offset): the
// order a sorted insert into one slice gives, at a cost that does not grow
// with what the queue holds. (A sorted insert moved every record after the
// insertion point: with raw partitions a few seconds apart in event time,
// most of the queue, for most records; BenchmarkRawMerge.) A record stamped
// before the last one queued from its raw partition is inserted in order
// into its FIFO, and so are the records reloaded from the held set, which do
// not keep their raw partition: they share the FIFO of records of no known
// raw partition.

// recordQueue is an input's queue. subs[0] is the only FIFO of a
// co-partitioned input; an internal input's holds the records of no known
// raw partition, and raw partition p's are in subs[p+1].
type recordQueue struct {
	subs  []fifo
	n     int // records queued
	front int // the sub-queue holding the earliest record; -1: not known
}

// fifo is one sub-queue; q[head:] is live.
type fifo struct {
	q    []queued
	head int
}

// len is the number of records queued.
func (rq *recordQueue) len() int { return rq.n }

// before orders an internal input's records: by time, then offset (the
// order they arrived in).
func before(a, b *queued) bool {
	return a.ts < b.ts || a.ts == b.ts && a.r.Offset < b.r.Offset
}

// peek returns the earliest record; the queue must not be empty.
func (rq *recordQueue) peek() *queued {
	if rq.front < 0 {
		rq.front = 0
		var best *queued
		for i := range rq.subs {
			s := &rq.subs[i]
			if s.head == len(s.q) {
				continue
			}
			if h := &s.q[s.head]; best == nil || before(h, best) {
				best, rq.front = h, i
			}
		}
	}
	s := &rq.subs[rq.front]
	return &s.q[s.head]
}

// pop removes and returns the earliest record.
func (rq *recordQueue) pop() queued {
	rq.peek()
	s := &rq.subs[rq.front]
	q := s.q[s.head]
	s.q[s.head] = queued{}
	s.head++
	rq.n--
	if len(rq.subs) > 1 {
		rq.front = -1
	}
	return q
}

// append queues q last: a co-partitioned input's record.
func (rq *recordQueue) append(q queued) {
	if len(rq.subs) == 0 {
		rq.subs = make([]fifo, 1)
	}
	rq.subs[0].q = append(rq.subs[0].q, q)
	rq.n++
	if len(rq.subs) == 1 {
		rq.front = 0
	} else {
		rq.front = -1
	}
}

// insert queues q in sub-queue sub, after every record of it that comes
// before or with it: an internal input's record.
func (rq *recordQueue) insert(q queued, sub int) {
	for len(rq.subs) <= sub {
		rq.subs = append(rq.subs, fifo{})
	}
	s := &rq.subs[sub]
	live := s.q[s.head:]
	if n := len(live); n == 0 || !before(&q, &live[n-1]) {
		s.q = append(s.q, q)
	} else {
		k, _ := slices.BinarySearchFunc(live, &q, func(e queued, q *queued) int {
			if before(q, &e) {
				return 1
			}
			return -1 // e comes before q, or with it: q goes after
		})
		s.q = slices.Insert(s.q, s.head+k, q)
	}
	rq.n++
	rq.front = -1
}

// each calls fn with every queued record, in no particular order.
func (rq *recordQueue) each(fn func(*queued) error) error {
	for i := range rq.subs {
		s := &rq.subs[i]
		for k := s.head; k < len(s.q); k++ {
			if err := fn(&s.q[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// reset empties the queue.
func (rq *recordQueue) reset() {
	for i := range rq.subs {
		s := &rq.subs[i]
		clear(s.q)
		s.q, s.head = s.q[:0], 0
	}
	rq.n, rq.front = 0, -1
}

// sortFirst puts subs[0] in (time, offset) order: the held records an
// internal input reloaded, appended in offset order.
func (rq *recordQueue) sortFirst() {
	if len(rq.subs) == 0 {
		return
	}
	s := &rq.subs[0]
	slices.SortFunc(s.q[s.head:], func(a, b queued) int {
		switch {
		case before(&a, &b):
			return -1
		case before(&b, &a):
			return 1
		}
		return 0
	})
	rq.front = -1
}

// compact drops processed records from the front of each sub-queue once
// they are the larger part of it, so a sub-queue does not grow without
// bound.
func (rq *recordQueue) compact() {
	for i := range rq.subs {
		s := &rq.subs[i]
		if s.head == 0 || s.head < len(s.q)/2 {
			continue
		}
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q, s.head = s.q[:n], 0
	}
}
