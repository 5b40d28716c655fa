package processor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
)

// noTime marks an input that has not shown any record timestamp yet.
const noTime = math.MinInt64

// progressKey is the offsets entry under which an input's event-time
// progress (highest record timestamp, unix ms) is stored with the state, so
// that a restart resumes with the watermark it had.
func progressKey(topic string) string { return "@progress/" + topic }

// input is one input topic as seen by one partition worker.
type input struct {
	topic  string
	source schemas.Source
	dec    *schemas.Decoder
	events prometheus.Counter

	maxTs    int64 // highest record timestamp seen (unix ms), or noTime
	next     int64 // offset of the next record expected (diagnostics), -1 unknown
	caughtUp bool  // no lag as of the last fetch or lag check

	// queue holds the records not processed yet, in offset order: this
	// cycle's records and those held from earlier cycles because another
	// input had not caught up with their timestamp. queue[head:] is live.
	queue []queued
	head  int

	// This cycle's polled records, the fetch's last stable offset and the
	// partition's log start offset (where retention has deleted up to).
	recs     []*kgo.Record
	consumed int // records queued this cycle, counted at commit
	lso      int64
	logStart int64
	lost     prometheus.Counter
	// duplicates counts events skipped by the rules' dedupe.
	duplicates prometheus.Counter
}

// queued is a record waiting in an input's queue. stored says it is in the
// state's held set (so processing it must release it there).
type queued struct {
	r      *kgo.Record
	ts     int64 // record timestamp, unix ms
	stored bool
}

func (in *input) pending() int { return len(in.queue) - in.head }

// worker owns one assigned partition: its state, its timers and its share of
// each cycle. A cycle runs on its own goroutine; between cycles the
// processor's loop touches the worker (commit, abort), so no lock is needed.
type worker struct {
	p    *Processor
	id   int32
	log  *zap.Logger
	part *state.Partition

	inputs  []input
	wmLag   prometheus.Gauge
	actions rules.Actions
	ev      schemas.Event
	// reuse is what decoding into ev can use again (its properties map
	// and names): nothing keeps an event's map past its handling.
	reuse schemas.Reuse
	due   []schemas.Timer
	// nextDue caches the earliest pending due time so that a record
	// costs no index scan unless a timer may be due. It may be too early
	// (the timer was cancelled), never too late.
	nextDue time.Time
	hasDue  bool

	// Per cycle.
	timersFired  int
	evalErrors   int // expression errors logged this cycle
	erased       int // customers erased this cycle, counted at commit
	deadLettered int // records dead-lettered this cycle, counted at commit
	emitted      []emitted
	suppressed   []suppressed // the contact policy's records, counted at commit
	chlogLast    atomic.Int64 // offset of the last changelog record produced; written by promises
	// chlogCount counts the cycle's changelog records by kind and op
	// (0 set, 1 delete), added to chlogRecords at commit; runCycle
	// clears it, so an aborted cycle's records are never counted.
	chlogCount   [state.NumRecordKinds][2]int
	chlogRecords [state.NumRecordKinds][2]prometheus.Counter
	// writeBack is the partition's triggerd_store_write_back_bytes.
	writeBack    prometheus.Gauge
	chlogPromise func(*kgo.Record, error)
	// batchEnd is the changelog record that closes the cycle's batch in
	// at-least-once mode, held back until the rest is acknowledged.
	batchEnd *kgo.Record
	err      error
}

func newWorker(p *Processor, id int32, part *state.Partition) (*worker, error) {
	w := &worker{p: p, id: id, part: part, log: p.log.With(zap.Int32("partition", id))}
	pl := strconv.Itoa(int(id))
	for i, t := range p.cfg.Inputs() {
		w.inputs = append(w.inputs, input{
			topic:      t,
			source:     p.sources[i],
			dec:        p.decoders[i],
			events:     p.m.events.WithLabelValues(t, pl),
			lost:       p.m.inputLost.WithLabelValues(t, pl),
			duplicates: p.m.duplicates.WithLabelValues(t),
			maxTs:      noTime,
		})
	}
	w.wmLag = p.m.watermarkLag.WithLabelValues(pl)
	for k := range w.chlogRecords {
		w.chlogRecords[k][0] = p.m.changelog.WithLabelValues(state.RecordKind(k).String(), "set")
		w.chlogRecords[k][1] = p.m.changelog.WithLabelValues(state.RecordKind(k).String(), "delete")
	}
	p.m.timersPend.WithLabelValues(pl).Set(float64(part.PendingTimers()))
	w.writeBack = p.m.writeBack.WithLabelValues(pl)
	w.writeBack.Set(float64(part.WriteBackBytes()))
	w.chlogPromise = func(r *kgo.Record, err error) {
		if err != nil {
			p.produceFailed(r, err)
			return
		}
		// Promises of one partition run in order, so the last call
		// carries the highest offset.
		w.chlogLast.Store(r.Offset)
	}
	offs, err := part.Offsets()
	if err != nil {
		return nil, err
	}
	for i := range w.inputs {
		if ts, ok := offs.Inputs[progressKey(w.inputs[i].topic)]; ok {
			w.inputs[i].maxTs = ts
		}
		w.inputs[i].next = -1
		if o, ok := offs.Inputs[w.inputs[i].topic]; ok {
			w.inputs[i].next = o
		}
		if p.trace != "" {
			w.log.Info("trace start", zap.String("topic", w.inputs[i].topic), zap.Int64("next", w.inputs[i].next), zap.Int64("changelog", offs.Changelog))
		}
	}
	if err := w.loadHeld(); err != nil {
		return nil, err
	}
	if err := w.refreshNextDue(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *worker) refreshNextDue() error {
	due, ok, err := w.part.NextDue()
	if err != nil {
		return err
	}
	w.nextDue, w.hasDue = due, ok
	return nil
}

// progress returns how far input i is known to have come in event time
// (unix ms): the timestamp of its next queued record; else the wall clock
// when it is caught up and IdleAdvance is on; else the highest timestamp it
// has shown. noTime means unknown: nothing may pass it.
func (w *worker) progress(i int, nowMs int64) int64 {
	in := &w.inputs[i]
	if in.pending() > 0 {
		return w.orderTs(in.queue[in.head].ts, nowMs)
	}
	if w.p.cfg.IdleAdvance && in.caughtUp && nowMs > in.maxTs {
		return nowMs
	}
	return in.maxTs
}

// orderTs is the timestamp a record is ordered by. With IdleAdvance, a
// record stamped in the future (a producer's clock ahead of ours) counts as
// now, so it does not wait until its time comes.
func (w *worker) orderTs(ts, nowMs int64) int64 {
	if w.p.cfg.IdleAdvance && ts > nowMs {
		return nowMs
	}
	return ts
}

// watermark returns the partition's event-time watermark: the minimum over
// the inputs of their progress, minus the allowed lateness. ok is false while
// an input's progress is unknown (timers must not fire ahead of a backlog
// that may cancel them).
func (w *worker) watermark(now time.Time) (time.Time, bool) {
	nowMs := now.UnixMilli()
	minTs := int64(math.MaxInt64)
	for i := range w.inputs {
		ts := w.progress(i, nowMs)
		if ts == noTime {
			return time.Time{}, false
		}
		minTs = min(minTs, ts)
	}
	return time.UnixMilli(minTs).Add(-w.p.cfg.Lateness), true
}

// next returns the input whose queued head comes first in event time, if
// that record may be processed now: no other input can still deliver an
// earlier record (its progress is at least the record's timestamp). Ties go
// to the input listed first, so the order is deterministic.
func (w *worker) next(nowMs int64) (int, bool) {
	best, bestTs := -1, int64(0)
	for i := range w.inputs {
		in := &w.inputs[i]
		if in.pending() == 0 {
			continue
		}
		if ts := w.orderTs(in.queue[in.head].ts, nowMs); best < 0 || ts < bestTs {
			best, bestTs = i, ts
		}
	}
	if best < 0 {
		return -1, false
	}
	for j := range w.inputs {
		if j == best {
			continue
		}
		if p := w.progress(j, nowMs); p == noTime || p < bestTs {
			return -1, false
		}
	}
	return best, true
}

// checkLost reports input records that the broker deleted before this
// partition processed them. The state knows the next offset it expects; a
// fetch that starts past it while the log now starts past it too means
// retention removed the records in between, and the consumer (reset by
// OFFSET_OUT_OF_RANGE) skipped them. That is data loss the processor cannot
// undo: it says so loudly, counts it, and goes on from what is left. Small
// gaps with the log start below the expected offset are transaction markers
// or compaction, not loss.
func (w *worker) checkLost(in *input) {
	if in.next < 0 || in.logStart <= in.next {
		return
	}
	first := in.recs[0].Offset
	if first <= in.next {
		return
	}
	lost := min(first, in.logStart) - in.next
	in.lost.Add(float64(lost))
	w.log.Error("input records were deleted by the broker before they were processed; they are lost: "+
		"raise the retention of the input topic or fix the consumer lag",
		zap.String("topic", in.topic), zap.Int64("expected_offset", in.next),
		zap.Int64("log_start_offset", in.logStart), zap.Int64("resumed_at", first), zap.Int64("lost", lost))
}

// hasWork reports whether a cycle would do anything for this worker.
func (w *worker) hasWork(now time.Time) bool {
	for i := range w.inputs {
		if len(w.inputs[i].recs) > 0 {
			return true
		}
	}
	if _, ok := w.next(now.UnixMilli()); ok {
		return true
	}
	if !w.hasDue {
		return false
	}
	wm, ok := w.watermark(now)
	return ok && !w.nextDue.After(wm)
}

// cycle runs this worker's share of a cycle on its own goroutine.
func (w *worker) cycle(now time.Time) {
	w.err = w.runCycle(now)
}

// runCycle queues this cycle's records, then processes queued records of
// every input in event-time order for as long as no other input may still
// deliver an earlier one, firing each due timer before the first record past
// its due time plus the lateness. Records that must wait are held in the
// state, so the transaction can commit their offsets without losing them.
// Last, it produces the changelog records of everything it changed.
func (w *worker) runCycle(now time.Time) error {
	w.timersFired = 0
	w.evalErrors = 0
	w.erased = 0
	w.deadLettered = 0
	w.emitted = w.emitted[:0]
	w.suppressed = w.suppressed[:0]
	w.chlogLast.Store(-1)
	w.chlogCount = [state.NumRecordKinds][2]int{}
	w.batchEnd = nil
	nowMs := now.UnixMilli()
	for i := range w.inputs {
		in := &w.inputs[i]
		in.consumed = 0
		if len(in.recs) == 0 {
			continue
		}
		if w.p.sess == nil && in.next >= 0 {
			// At-least-once: the group's offsets are committed after the
			// state is applied, so after a crash in between they are
			// behind the state's (restored from the changelog): the
			// records the state already holds are skipped here, never
			// applied twice. (SetOffsets cannot do it: kgo ignores it for
			// a partition not yet returned by a poll.)
			k := 0
			for k < len(in.recs) && in.recs[k].Offset < in.next {
				k++
			}
			if in.recs = in.recs[k:]; len(in.recs) == 0 {
				continue
			}
		}
		w.checkLost(in)
		for _, r := range in.recs {
			// Offsets are not contiguous on transactional or compacted
			// inputs, so the check is a diagnostic for tests only.
			if w.p.trace != "" && in.next >= 0 && r.Offset != in.next {
				w.log.Warn("input offset gap", zap.String("topic", in.topic), zap.Int64("want", in.next), zap.Int64("got", r.Offset))
			}
			in.next = r.Offset + 1
			ts := r.Timestamp.UnixMilli()
			in.queue = append(in.queue, queued{r: r, ts: ts})
			in.maxTs = max(in.maxTs, ts)
		}
		last := in.recs[len(in.recs)-1]
		in.caughtUp = last.Offset+1 >= in.lso
		w.part.SetOffset(in.topic, last.Offset+1)
		w.part.SetOffset(progressKey(in.topic), in.maxTs)
		in.consumed = len(in.recs)
	}
	for {
		i, ok := w.next(nowMs)
		if !ok {
			break
		}
		in := &w.inputs[i]
		q := in.queue[in.head]
		in.queue[in.head] = queued{}
		in.head++
		if err := w.fireUpTo(now, time.UnixMilli(w.orderTs(q.ts, nowMs)).Add(-w.p.cfg.Lateness)); err != nil {
			return err
		}
		if err := w.handle(in, q.r, now); err != nil {
			return err
		}
		if q.stored {
			if err := w.part.Release(uint8(in.source), q.r.Offset); err != nil {
				return err
			}
		}
	}
	if wm, ok := w.watermark(now); ok {
		if err := w.fireUpTo(now, wm); err != nil {
			return err
		}
		w.wmLag.Set(now.Sub(wm).Seconds())
	}
	for i := range w.inputs {
		in := &w.inputs[i]
		in.compact()
		for k := in.head; k < len(in.queue); k++ {
			q := &in.queue[k]
			if q.stored {
				continue
			}
			if err := w.part.Hold(state.HeldRecord{Input: uint8(in.source), Offset: q.r.Offset,
				Time: time.UnixMilli(q.ts), Key: q.r.Key, Value: q.r.Value}); err != nil {
				return err
			}
			q.stored = true
		}
	}
	if w.p.sess == nil {
		// At-least-once: every batch's changelog records end with the
		// offsets record, which is how a restore tells a whole batch
		// from one a crash cut short (restore.go).
		in := &w.inputs[0]
		w.part.SetOffset(progressKey(in.topic), in.maxTs)
	}
	return w.part.Changes(func(key, value []byte) error {
		op := 0
		if value == nil {
			op = 1
		}
		w.chlogCount[state.KindOf(key)][op]++
		// The buffers stay valid until Commit or Abort, which come
		// after End has flushed this record: no copy needed.
		r := &kgo.Record{Topic: w.p.cfg.Topics.Changelog, Partition: w.id, Key: key, Value: value}
		if w.p.sess == nil && state.IsBatchEnd(key) {
			// At-least-once: a restore applies a batch only once its
			// closing offsets record is in the changelog. Produced with
			// the rest, it could be acknowledged before one of the
			// cycle's triggers, and a crash in between would lose that
			// trigger (the restored state has its event). So it goes
			// out after everything else is acknowledged (endAtLeastOnce).
			w.batchEnd = r
			return nil
		}
		w.p.produce(r, w.chlogPromise)
		return nil
	})
}

// compact drops processed records from the front of the queue once they
// are the larger part of it, so the queue does not grow without bound.
func (in *input) compact() {
	if in.head == 0 || in.head < len(in.queue)/2 {
		return
	}
	n := copy(in.queue, in.queue[in.head:])
	clear(in.queue[n:])
	in.queue, in.head = in.queue[:n], 0
}

// loadHeld rebuilds the input queues from the state's committed held
// records, after a restore or an aborted transaction.
func (w *worker) loadHeld() error {
	bySource := map[uint8]*input{}
	for i := range w.inputs {
		in := &w.inputs[i]
		clear(in.queue)
		in.queue, in.head = in.queue[:0], 0
		bySource[uint8(in.source)] = in
	}
	return w.part.Held(func(h state.HeldRecord) error {
		in := bySource[h.Input]
		if in == nil {
			return fmt.Errorf("processor: held record of unknown input %d", h.Input)
		}
		r := &kgo.Record{Topic: in.topic, Partition: w.id, Offset: h.Offset, Timestamp: h.Time,
			Key: bytes.Clone(h.Key), Value: bytes.Clone(h.Value)}
		in.queue = append(in.queue, queued{r: r, ts: h.Time.UnixMilli(), stored: true})
		return nil
	})
}

// fireUpTo fires the timers due at or before upTo, up to the cycle's
// limit, through the same rules and output path as events.
func (w *worker) fireUpTo(now, wm time.Time) error {
	if !w.hasDue || w.nextDue.After(wm) {
		return nil
	}
	for w.timersFired < w.p.cfg.TimersPerCycle {
		limit := min(256, w.p.cfg.TimersPerCycle-w.timersFired)
		var err error
		w.due, err = w.part.PopDue(wm, limit, w.due[:0])
		if err != nil {
			return err
		}
		// The timers of one customer due at the same instant are
		// evaluated together (PopDue orders by due time, then
		// customer), so the contact policy lets their triggers compete
		// by priority as the triggers of one event do.
		for i := 0; i < len(w.due); {
			t := &w.due[i]
			j := i + 1
			for j < len(w.due) && w.due[j].Customer == t.Customer && w.due[j].Due.Equal(t.Due) {
				j++
			}
			c, err := w.part.Customer(t.Customer)
			if err != nil {
				return err
			}
			w.actions.Reset()
			w.p.Rules().OnTimers(c, w.due[i:j], &w.actions)
			w.logEvalErrors(t.Customer)
			if w.p.trace != "" && strings.HasPrefix(string(t.Customer), w.p.trace) {
				w.log.Info("trace timer", zap.String("customer", string(t.Customer)), zap.Time("due", t.Due), zap.Time("wm", wm),
					zap.Int32("stage", t.Stage), zap.String("occurrence", t.Occurrence), zap.Int("timers", j-i), zap.Int("emit", len(w.actions.Emit)))
			}
			if err := w.apply(c, now); err != nil {
				return err
			}
			for ; i < j; i++ {
				w.p.m.fireLag.Observe(now.Sub(w.due[i].Due).Seconds())
			}
		}
		w.timersFired += len(w.due)
		w.p.m.timersFired.Add(float64(len(w.due)))
		if len(w.due) < limit {
			break
		}
	}
	return w.refreshNextDue()
}

// handle decodes one input record and runs the rules on it. A bad record is
// dead-lettered and is not an error; an error is fatal (state failure).
func (w *worker) handle(in *input, r *kgo.Record, now time.Time) error {
	ev := &w.ev
	if err := in.dec.DecodeReusing(context.Background(), r.Value, ev, &w.reuse); err != nil {
		var de *schemas.DecodeError
		if !errors.As(err, &de) {
			// Not the record's fault (the schema registry did not
			// answer): retry the cycle rather than dead-letter a
			// good record.
			return &retryableError{fmt.Errorf("decoding %s offset %d: %w", in.topic, r.Offset, err)}
		}
		w.deadLetter(in, r, de.Reason, err.Error(), now)
		return nil
	}
	if string(r.Key) != string(ev.Customer) {
		w.deadLetter(in, r, "key_mismatch", "record key "+strconv.Quote(string(r.Key))+" is not the customer ID "+strconv.Quote(string(ev.Customer)), now)
		return nil
	}
	if ev.Time.Before(now.Add(-w.p.cfg.MaxEventAge)) || ev.Time.After(now.Add(w.p.cfg.MaxEventAhead)) {
		w.deadLetter(in, r, "absurd_timestamp", "event time "+ev.Time.Format(time.RFC3339)+" is outside the accepted range", now)
		return nil
	}
	if ev.Type == schemas.ProfileErase && in.source == schemas.SourceProfile {
		// Before the catalogue check: an erase is never dead-lettered
		// for want of a line in the rules file.
		return w.erase(ev, now)
	}
	rs := w.p.Rules()
	if !rs.Accepts(ev.Type) {
		w.deadLetter(in, r, "unknown_type", "event type "+strconv.Quote(string(ev.Type))+" is not in the rules file's events catalogue", now)
		return nil
	}
	c, err := w.part.Customer(ev.Customer)
	if err != nil {
		return err
	}
	w.actions.Reset()
	rs.OnEvent(c, ev, &w.actions)
	if w.actions.Duplicate {
		// Seen within the dedupe window: the record changed nothing
		// (the rules did not touch the customer).
		in.duplicates.Inc()
		if w.log.Core().Enabled(zap.DebugLevel) {
			w.log.Debug("duplicate event", zap.String("customer_id", string(ev.Customer)), zap.String("event_id", ev.ID))
		}
		return nil
	}
	w.logEvalErrors(ev.Customer)
	if w.p.trace != "" && strings.HasPrefix(string(ev.Customer), w.p.trace) {
		w.log.Info("trace event", zap.String("customer", string(ev.Customer)), zap.String("event", ev.ID),
			zap.String("type", string(ev.Type)), zap.Time("at", ev.Time), zap.Int64("offset", r.Offset),
			zap.Int("cancel", len(w.actions.Cancel)), zap.Int("schedule", len(w.actions.Schedule)), zap.Int("cart", len(c.Cart.Items)))
	}
	return w.apply(c, now)
}

// logEvalErrors logs the expression errors of the last evaluation, at most
// a few per cycle: a rule that fails for every customer must not flood the
// log (the rule author finds the cause with "triggerd rules test").
//
// CEL's error text can quote the values it failed on (timestamp() quotes
// the string it could not parse: an event or customer attribute), so the
// warning names only the rule and which of its expressions failed; the
// error itself and the customer ID go to the debug level.
func (w *worker) logEvalErrors(c schemas.CustomerID) {
	w.p.m.evalErrors.Add(float64(len(w.actions.Errors)))
	for _, err := range w.actions.Errors {
		if w.evalErrors >= 5 {
			return
		}
		w.evalErrors++
		var ee *rules.EvalError
		if errors.As(err, &ee) {
			w.log.Warn("rule expression failed; it counted as false (the detail is logged at debug level)",
				zap.String("rule_id", string(ee.Rule)), zap.String("expression", ee.Expression))
		} else {
			w.log.Warn("rule expression failed; it counted as false (the detail is logged at debug level)")
		}
		if w.log.Core().Enabled(zap.DebugLevel) {
			w.log.Debug("rule expression failed", zap.String("customer_id", string(c)), zap.Error(err))
		}
	}
}

// apply carries out the rules' actions for customer c: cancel, schedule
// (deferred triggers too), emit, write the contact policy's suppressions,
// and record the decisions in c's audit trail.
func (w *worker) apply(c *schemas.Customer, now time.Time) error {
	recordDecisions(c, &w.actions, now)
	a := &w.actions
	for _, ref := range a.Cancel {
		if err := w.part.Cancel(ref.Customer, ref.ID); err != nil {
			return err
		}
	}
	for i := range a.Schedule {
		t := &a.Schedule[i]
		if err := w.part.Schedule(*t); err != nil {
			return err
		}
		if !w.hasDue || t.Due.Before(w.nextDue) {
			w.nextDue, w.hasDue = t.Due, true
		}
	}
	for i := range a.Emit {
		tr := &a.Emit[i]
		tr.FiredAt = now
		if err := w.p.emit(w, tr); err != nil {
			return err
		}
	}
	// In the same transaction as the triggers: see suppress.go.
	return w.writeSuppressions(now)
}

// deadLetter sends r to the dead-letter topic with the reason and its origin
// in headers. The partition keeps flowing.
//
// The dead letter is stamped with the time it was written, not the
// source record's time (that goes in a header): a record from a backfill,
// stamped weeks ago, would otherwise fall under the dead-letter topic's
// time retention at once and be deleted before anyone looked at it.
func (w *worker) deadLetter(in *input, r *kgo.Record, reason, detail string, now time.Time) {
	if len(detail) > 512 {
		detail = detail[:512]
	}
	hs := make([]kgo.RecordHeader, 0, 6+len(r.Headers))
	hs = append(hs,
		kgo.RecordHeader{Key: "dlq_reason", Value: []byte(reason)},
		kgo.RecordHeader{Key: "dlq_error", Value: []byte(detail)},
		kgo.RecordHeader{Key: "dlq_source_topic", Value: []byte(in.topic)},
		kgo.RecordHeader{Key: "dlq_source_partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: "dlq_source_offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
		kgo.RecordHeader{Key: "dlq_source_timestamp", Value: []byte(r.Timestamp.UTC().Format(time.RFC3339Nano))},
	)
	hs = append(hs, r.Headers...)
	w.p.produce(&kgo.Record{Topic: w.p.cfg.Topics.DeadLetter, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: now}, w.p.promise)
	w.p.m.deadLettered.WithLabelValues(in.topic, reason).Inc()
	w.deadLettered++
	if w.log.Core().Enabled(zap.DebugLevel) {
		w.log.Debug("dead-lettered record", zap.String("topic", in.topic), zap.Int64("offset", r.Offset), zap.String("reason", reason))
	}
}

// commit applies the cycle's Pebble batch after the transaction committed.
func (w *worker) commit() error {
	if err := w.part.Commit(w.chlogLast.Load()); err != nil {
		return err
	}
	if w.p.trace != "" {
		offs, _ := w.part.Offsets()
		w.log.Info("trace commit", zap.Int64("changelog", offs.Changelog), zap.Any("inputs", offs.Inputs))
	}
	w.p.m.timersPend.WithLabelValues(strconv.Itoa(int(w.id))).Set(float64(w.part.PendingTimers()))
	w.writeBack.Set(float64(w.part.WriteBackBytes()))
	w.countSuppressed()
	for i := range w.inputs {
		in := &w.inputs[i]
		in.events.Add(float64(in.consumed))
		w.p.stats.events.Add(int64(in.consumed))
		in.consumed = 0
	}
	w.p.stats.deadLetters.Add(int64(w.deadLettered))
	w.deadLettered = 0
	for k := range w.chlogCount {
		for op, n := range w.chlogCount[k] {
			if n > 0 {
				w.chlogRecords[k][op].Add(float64(n))
			}
		}
	}
	if w.erased > 0 {
		w.p.m.erasures.Add(float64(w.erased))
		w.p.stats.erasures.Add(int64(w.erased))
		w.erased = 0
	}
	return nil
}

// abort drops the cycle's changes after the transaction aborted. Input
// progress goes back too: the records will be polled again.
func (w *worker) abort() error {
	w.part.Abort()
	if err := w.loadHeld(); err != nil {
		return err
	}
	offs, err := w.part.Offsets()
	if err != nil {
		return err
	}
	for i := range w.inputs {
		in := &w.inputs[i]
		in.maxTs = noTime
		if ts, ok := offs.Inputs[progressKey(in.topic)]; ok {
			in.maxTs = ts
		}
		in.next = -1
		if o, ok := offs.Inputs[in.topic]; ok {
			in.next = o
		}
		in.caughtUp = false
	}
	return w.refreshNextDue()
}
