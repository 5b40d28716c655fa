package processor

import (
	"errors"
	"fmt"
	"math"
	"strconv"
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
	caughtUp bool  // no lag as of the last fetch or lag check

	// This cycle's records and the fetch's last stable offset.
	recs []*kgo.Record
	lso  int64
}

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
	due     []schemas.Timer
	// nextDue caches the earliest pending due time so that a record
	// costs no index scan unless a timer may be due. It may be too early
	// (the timer was cancelled), never too late.
	nextDue time.Time
	hasDue  bool

	// Per cycle.
	timersFired  int
	emitted      []emitted
	chlogLast    atomic.Int64 // offset of the last changelog record produced; written by promises
	chlogPromise func(*kgo.Record, error)
	err          error
}

func newWorker(p *Processor, id int32, part *state.Partition) (*worker, error) {
	w := &worker{p: p, id: id, part: part, log: p.log.With(zap.Int32("partition", id))}
	pl := strconv.Itoa(int(id))
	for i, t := range p.cfg.Inputs() {
		w.inputs = append(w.inputs, input{
			topic:  t,
			source: p.sources[i],
			dec:    p.decoders[i],
			events: p.m.events.WithLabelValues(t, pl),
			maxTs:  noTime,
		})
	}
	w.wmLag = p.m.watermarkLag.WithLabelValues(pl)
	w.chlogPromise = func(r *kgo.Record, err error) {
		if err != nil {
			p.produceFailed(err)
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

// watermark returns the partition's event-time watermark: the minimum over
// the inputs of their progress, minus the allowed lateness. ok is false while
// an input's progress is unknown (it would otherwise let timers fire ahead
// of a backlog that may cancel them).
func (w *worker) watermark(now time.Time) (time.Time, bool) {
	minTs := int64(math.MaxInt64)
	nowMs := now.UnixMilli()
	for i := range w.inputs {
		in := &w.inputs[i]
		ts := in.maxTs
		if w.p.cfg.IdleAdvance && in.caughtUp && nowMs > ts {
			ts = nowMs
		}
		if ts == noTime {
			return time.Time{}, false
		}
		minTs = min(minTs, ts)
	}
	return time.UnixMilli(minTs).Add(-w.p.cfg.Lateness), true
}

// hasWork reports whether a cycle would do anything for this worker.
func (w *worker) hasWork(now time.Time) bool {
	for i := range w.inputs {
		if len(w.inputs[i].recs) > 0 {
			return true
		}
	}
	if !w.hasDue {
		return false
	}
	wm, ok := w.watermark(now)
	return ok && !w.nextDue.After(wm)
}

// cycle processes this cycle's records of every input in timestamp order,
// firing due timers as the watermark passes them, then produces the
// changelog records of everything it changed. It runs on its own goroutine.
func (w *worker) cycle(now time.Time) {
	w.err = w.runCycle(now)
}

func (w *worker) runCycle(now time.Time) error {
	w.timersFired = 0
	w.emitted = w.emitted[:0]
	w.chlogLast.Store(-1)
	for i := range w.inputs {
		if len(w.inputs[i].recs) > 0 {
			w.inputs[i].caughtUp = false
		}
	}
	var idx [8]int // records consumed per input; inputs are few
	for {
		best := -1
		var bestTs time.Time
		for i := range w.inputs {
			in := &w.inputs[i]
			if idx[i] < len(in.recs) {
				if ts := in.recs[idx[i]].Timestamp; best < 0 || ts.Before(bestTs) {
					best, bestTs = i, ts
				}
			}
		}
		if best < 0 {
			break
		}
		in := &w.inputs[best]
		r := in.recs[idx[best]]
		idx[best]++
		if ts := r.Timestamp.UnixMilli(); ts > in.maxTs {
			in.maxTs = ts
		}
		if err := w.fireDue(now); err != nil {
			return err
		}
		if err := w.handle(in, r, now); err != nil {
			return err
		}
		w.part.SetOffset(in.topic, r.Offset+1)
		if idx[best] == len(in.recs) {
			in.caughtUp = r.Offset+1 >= in.lso
			in.events.Add(float64(len(in.recs)))
			w.p.stats.events.Add(int64(len(in.recs)))
		}
	}
	if err := w.fireDue(now); err != nil {
		return err
	}
	if wm, ok := w.watermark(now); ok {
		w.wmLag.Set(now.Sub(wm).Seconds())
	}
	for i := range w.inputs {
		in := &w.inputs[i]
		if len(in.recs) > 0 && in.maxTs != noTime {
			w.part.SetOffset(progressKey(in.topic), in.maxTs)
		}
	}
	return w.part.Changes(func(key, value []byte) error {
		// The buffers stay valid until Commit or Abort, which come
		// after End has flushed this record: no copy needed.
		w.p.produce(&kgo.Record{Topic: w.p.cfg.Topics.Changelog, Partition: w.id, Key: key, Value: value}, w.chlogPromise)
		return nil
	})
}

// fireDue fires the timers due at the current watermark, up to the cycle's
// limit, through the same rules and output path as events.
func (w *worker) fireDue(now time.Time) error {
	if !w.hasDue {
		return nil
	}
	wm, ok := w.watermark(now)
	if !ok || w.nextDue.After(wm) {
		return nil
	}
	for w.timersFired < w.p.cfg.TimersPerCycle {
		limit := min(256, w.p.cfg.TimersPerCycle-w.timersFired)
		var err error
		w.due, err = w.part.PopDue(wm, limit, w.due[:0])
		if err != nil {
			return err
		}
		for i := range w.due {
			t := &w.due[i]
			c, err := w.part.Customer(t.Customer)
			if err != nil {
				return err
			}
			w.actions.Reset()
			w.p.rules.OnTimer(c, t, &w.actions)
			if err := w.apply(now); err != nil {
				return err
			}
			w.p.m.fireLag.Observe(now.Sub(t.Due).Seconds())
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
	if err := in.dec.Decode(r.Value, ev); err != nil {
		var de *schemas.DecodeError
		if !errors.As(err, &de) {
			// Not the record's fault (the schema registry did not
			// answer): retry the cycle rather than dead-letter a
			// good record.
			return &retryableError{fmt.Errorf("decoding %s offset %d: %w", in.topic, r.Offset, err)}
		}
		w.deadLetter(in, r, de.Reason, err.Error())
		return nil
	}
	if string(r.Key) != string(ev.Customer) {
		w.deadLetter(in, r, "key_mismatch", "record key "+strconv.Quote(string(r.Key))+" is not the customer ID "+strconv.Quote(string(ev.Customer)))
		return nil
	}
	if ev.Time.Before(now.Add(-w.p.cfg.MaxEventAge)) || ev.Time.After(now.Add(w.p.cfg.MaxEventAhead)) {
		w.deadLetter(in, r, "absurd_timestamp", "event time "+ev.Time.Format(time.RFC3339)+" is outside the accepted range")
		return nil
	}
	c, err := w.part.Customer(ev.Customer)
	if err != nil {
		return err
	}
	w.actions.Reset()
	w.p.rules.OnEvent(c, ev, &w.actions)
	return w.apply(now)
}

// apply carries out the rules' actions: cancel, schedule, emit.
func (w *worker) apply(now time.Time) error {
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
	return nil
}

// deadLetter sends r to the dead-letter topic with the reason and its origin
// in headers. The partition keeps flowing.
func (w *worker) deadLetter(in *input, r *kgo.Record, reason, detail string) {
	if len(detail) > 512 {
		detail = detail[:512]
	}
	hs := make([]kgo.RecordHeader, 0, 5+len(r.Headers))
	hs = append(hs,
		kgo.RecordHeader{Key: "dlq_reason", Value: []byte(reason)},
		kgo.RecordHeader{Key: "dlq_error", Value: []byte(detail)},
		kgo.RecordHeader{Key: "dlq_source_topic", Value: []byte(in.topic)},
		kgo.RecordHeader{Key: "dlq_source_partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: "dlq_source_offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
	)
	hs = append(hs, r.Headers...)
	w.p.produce(&kgo.Record{Topic: w.p.cfg.Topics.DeadLetter, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp}, w.p.promise)
	w.p.m.deadLettered.WithLabelValues(in.topic, reason).Inc()
	w.p.stats.deadLetters.Add(1)
	if w.log.Core().Enabled(zap.DebugLevel) {
		w.log.Debug("dead-lettered record", zap.String("topic", in.topic), zap.Int64("offset", r.Offset), zap.String("reason", reason))
	}
}

// commit applies the cycle's Pebble batch after the transaction committed.
func (w *worker) commit() error {
	if err := w.part.Commit(w.chlogLast.Load()); err != nil {
		return err
	}
	w.p.m.timersPend.WithLabelValues(strconv.Itoa(int(w.id))).Set(float64(w.part.PendingTimers()))
	return nil
}

// abort drops the cycle's changes after the transaction aborted. Input
// progress goes back too: the records will be polled again.
func (w *worker) abort() error {
	w.part.Abort()
	offs, err := w.part.Offsets()
	if err != nil {
		return err
	}
	for i := range w.inputs {
		w.inputs[i].maxTs = noTime
		if ts, ok := offs.Inputs[progressKey(w.inputs[i].topic)]; ok {
			w.inputs[i].maxTs = ts
		}
		w.inputs[i].caughtUp = false
	}
	return w.refreshNextDue()
}
