package processor

import (
	"math"
	"time"
)

// Event time, in one place.
//
// A record's event time is the event_time field of its payload, validated
// when the record is admitted (admit.go): the Kafka record timestamp plays
// no part. Each input of a partition has a progress in event time, and the
// partition's watermark is the least progress minus the allowed lateness.
// Records are applied in event-time order across the inputs: the record
// with the earliest time goes first, once no other input can still deliver
// an earlier one.
//
// An input that has records queued has come as far as its first one. An
// empty input has come as far as the latest time it has shown (maxTs).
// With IdleAdvance, the broker can vouch for more: when an end-offset check
// sent at wall time c found every record of the input polled (caughtUpAt =
// c), then
//
//   - for the merge, a record of another input that arrived IdleGrace or
//     more before c may pass it, whatever the record's time: the input
//     stayed idle for the grace after the record came, so writes to several
//     topics a moment apart (under IdleGrace) are merged in event-time
//     order, even when the producer stamps them hours in the past;
//   - for the watermark, a record written after c is taken to be stamped
//     no earlier than c - IdleGrace (a live producer stamps what it writes
//     with the time it writes it), so the input's progress is at least
//     c - IdleGrace, and timers fire while inputs are idle.
//
// A record that breaks that assumption (stamped before c - IdleGrace,
// written after c: a backfill into a live partition) arrives after timers
// it should have preceded have fired. It is late: counted, noted in the
// customer's audit trail (see late), and applied once every other input
// has delivered a later record or stayed idle for the grace after it came
// (the other inputs' earlier times say nothing about it), so that late
// records written together a moment apart are still merged in order.

// noTime marks an input that has not shown any record time yet.
const noTime = math.MinInt64

// never is the progress of an input that cannot deliver anything before
// the record asking.
const never = math.MaxInt64

// progress returns how far input i has come in event time (unix ms), as
// seen by a queued record (q) or, when q is nil, by the watermark. noTime
// means unknown: nothing may pass it.
func (w *worker) progress(i int, nowMs int64, q *queued) int64 {
	in := &w.inputs[i]
	if in.raw != nil && w.cfg.IdleAdvance {
		return w.rawProgress(in, nowMs, q)
	}
	if in.pending() > 0 {
		return w.orderTs(in.queue.peek().ts, nowMs)
	}
	if !w.cfg.IdleAdvance {
		return in.maxTs
	}
	grace := w.cfg.IdleGrace.Milliseconds()
	switch {
	case q == nil && in.caughtUpAt != 0:
		return max(in.maxTs, in.caughtUpAt-grace)
	case q == nil:
		return in.maxTs
	case in.caughtUpAt != 0 && in.caughtUpAt >= q.arrived+grace:
		return never
	case q.late:
		// The input's times say nothing about a record stamped
		// behind the watermark (a replay written into a live
		// topic): it waits for the grace, so that what was
		// written with it a moment apart is merged with it.
		return noTime
	}
	return in.maxTs
}

// rawProgress is progress for the internal topic of a raw input, which
// merges raw partitions by arrival. What it can still deliver is bounded by
// the least of its raw partitions' highest times seen (repartition_order.go);
// its queue is in event-time order, so its head is the earliest it holds.
// While a raw partition has shown nothing, the bound is unknown and the
// broker's word stands in (caught up, stage included:
// repartition_caughtup.go): for the merge, a record of another input passes
// it once it was found caught up the grace after the record came; for the
// watermark, a record written after the check is stamped no earlier than
// the check minus the grace, as for any input.
func (w *worker) rawProgress(in *input, nowMs int64, q *queued) int64 {
	grace := w.cfg.IdleGrace.Milliseconds()
	bound := in.raw.bound()
	switch {
	case q == nil && in.caughtUpAt != 0:
		bound = max(bound, in.caughtUpAt-grace)
	case q == nil:
	case in.caughtUpAt != 0 && in.caughtUpAt >= q.arrived+grace:
		if in.pending() > 0 {
			return w.orderTs(in.queue.peek().ts, nowMs)
		}
		return never
	case in.pending() == 0 && q.late:
		return noTime // as for any input: see progress
	}
	if bound == noTime {
		return noTime
	}
	if in.pending() > 0 {
		return min(w.orderTs(in.queue.peek().ts, nowMs), bound)
	}
	return bound
}

// rawReady reports whether the head of internal input in, ordered at ts,
// may go as far as its own raw partitions are concerned: none of them can
// still deliver an earlier record (or the broker vouches for them all).
func (w *worker) rawReady(in *input, ts int64) bool {
	q := in.queue.peek()
	if in.caughtUpAt != 0 && in.caughtUpAt >= q.arrived+w.cfg.IdleGrace.Milliseconds() {
		return true
	}
	b := in.raw.bound()
	return b != noTime && b >= ts
}

// orderTs is the time a record is ordered by. With IdleAdvance, a record
// stamped in the future (a producer's clock ahead of ours, within
// MaxEventAhead) counts as now, so it does not wait until its time comes.
func (w *worker) orderTs(ts, nowMs int64) int64 {
	if w.cfg.IdleAdvance && ts > nowMs {
		return nowMs
	}
	return ts
}

// watermark returns the partition's event-time watermark: the least
// progress of the inputs, minus the allowed lateness. ok is false while an
// input's progress is unknown: timers must not fire ahead of a backlog that
// may cancel them.
func (w *worker) watermark(now time.Time) (time.Time, bool) {
	nowMs := now.UnixMilli()
	minTs := int64(never)
	for i := range w.inputs {
		ts := w.progress(i, nowMs, nil)
		if ts == noTime {
			return time.Time{}, false
		}
		minTs = min(minTs, ts)
	}
	return time.UnixMilli(minTs).Add(-w.cfg.Lateness), true
}

// next returns the input whose queued head comes first in event time, if
// that record may be applied now: no other input can still deliver an
// earlier record, nor one stamped the same millisecond that the tie would
// put first. Ties go to the input listed first, so the order is
// deterministic.
func (w *worker) next(nowMs int64) (int, bool) {
	best, bestTs := -1, int64(0)
	for i := range w.inputs {
		in := &w.inputs[i]
		if in.pending() == 0 {
			continue
		}
		if ts := w.orderTs(in.queue.peek().ts, nowMs); best < 0 || ts < bestTs {
			best, bestTs = i, ts
		}
	}
	if best < 0 {
		return -1, false
	}
	q := w.inputs[best].queue.peek()
	if in := &w.inputs[best]; in.raw != nil && w.cfg.IdleAdvance && !w.rawReady(in, bestTs) {
		return -1, false
	}
	for j := range w.inputs {
		if j == best {
			continue
		}
		p := w.progress(j, nowMs, q)
		// An input listed first wins a tie, and an input that has shown
		// bestTs may still deliver another record stamped bestTs (the
		// same millisecond): it must have come past it.
		if p == noTime || p < bestTs || j < best && p == bestTs {
			return -1, false
		}
	}
	return best, true
}

// waitsOnGrace reports whether a queued record waits only for an idle input's
// grace to run out: the next end-offset check should come soon.
func (w *worker) waitsOnGrace() bool {
	if !w.cfg.IdleAdvance {
		return false
	}
	for i := range w.inputs {
		if w.inputs[i].pending() > 0 {
			return true
		}
	}
	return false
}

// late reports whether a record with event time ts arrives after the
// watermark has passed it: timers have fired that the documented order puts
// after the record (a timer due at T comes after every record stamped
// before T + lateness), so the record can no longer cancel them.
func (w *worker) late(ts int64) bool {
	return w.firedTo != noTime && ts < w.firedTo+w.cfg.Lateness.Milliseconds()
}
