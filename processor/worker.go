package processor

import (
	"bytes"
	"errors"
	"fmt"
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

// input is one input topic as seen by one partition worker.
type input struct {
	topic  string
	source schemas.Source
	dec    *schemas.Decoder
	events prometheus.Counter

	maxTs int64 // highest event time admitted (unix ms), or noTime
	next  int64 // offset of the next record expected, -1 unknown
	// caughtUpAt is the wall time (unix ms) at which the last end-offset
	// check was sent that found every record of the input polled; 0:
	// none yet (caughtup.go).
	caughtUpAt int64

	// queue holds the records not processed yet (queue.go): this
	// cycle's records and those held from earlier cycles because another
	// input had not caught up with their timestamp.
	queue recordQueue

	// This cycle's polled records, the fetch's last stable offset and the
	// partition's log start offset (where retention has deleted up to).
	recs     []*kgo.Record
	consumed int // records queued this cycle, counted at commit
	logStart int64
	lost     prometheus.Counter
	// late counts records admitted after the watermark had passed them.
	late          prometheus.Counter
	lateThisCycle int
	// duplicates counts events skipped by the rules' dedupe.
	duplicates prometheus.Counter
	// raw tracks the raw partitions behind a raw input's internal topic
	// (repartition_order.go); nil for a co-partitioned input.
	raw *rawOrder
}

// queued is a record waiting in an input's queue. stored says it is in the
// state's held set (so processing it must release it there).
type queued struct {
	r       *kgo.Record
	ts      int64    // event time, unix ms
	arrived int64    // wall time it was polled (or reloaded), unix ms
	ev      *decoded // the decoded event; nil for a record reloaded from the held set
	stored  bool
	late    bool // admitted after the watermark had passed it
}

func (in *input) pending() int { return in.queue.len() }

// workerEnv is what a partition worker uses of its processor, the same for
// every worker: read-only while cycles run, apart from the metrics, the
// totals, the output and the misrouted-record log, which are safe for
// concurrent use. A worker never reaches the processor's session, its
// assignment or another worker.
type workerEnv struct {
	cfg        *Config
	m          *metrics
	stats      *Stats
	out        *output
	g          guarantee
	ruleSet    func() *rules.Set // the running rules (SetRules replaces them)
	clock      func() time.Time
	trace      string        // customer ID prefix to trace at info level (tests only)
	partitions *atomic.Int32 // the input partition count, once known
	misroutes  *misrouteLog  // partitioner_misrouted.go
}

// worker owns one assigned partition: its state, its timers and its share of
// each cycle. A cycle runs on its own goroutine; between cycles the
// processor's loop touches the worker (commit, abort), so no lock is needed.
type worker struct {
	*workerEnv
	id   int32
	log  *zap.Logger
	part *state.Partition

	inputs []input
	wmLag  prometheus.Gauge
	// waiting is triggerd_records_waiting; stalledSince and stallWarned
	// time the warning about an input that holds records back for good
	// (caughtup.go).
	waiting      prometheus.Gauge
	stalledSince time.Time
	stallWarned  time.Time
	actions      rules.Actions
	// free holds decoded events for the next records to admit.
	free []*decoded
	due  []schemas.Timer
	// nextDue caches the earliest pending due time so that a record
	// costs no index scan unless a timer may be due. It may be too early
	// (the timer was cancelled), never too late.
	nextDue time.Time
	hasDue  bool
	// creditFrom is the wall time (unix ms) before which an end-offset
	// check gives an idle input no credit: ReconnectGrace after the
	// partition was taken or the brokers were last unreachable.
	creditFrom int64
	// firedTo is the watermark up to which every timer has fired (unix
	// ms), or noTime: a record stamped before firedTo + lateness is late.
	// firedToCommitted is its value at the start of the cycle, for abort.
	firedTo, firedToCommitted int64

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
	// chlogBytes counts the cycle's changelog bytes (key and value) by kind.
	chlogBytes     [state.NumRecordKinds]int
	chlogByteCount [state.NumRecordKinds]prometheus.Counter
	// writeBack is the partition's triggerd_store_write_back_bytes.
	writeBack    prometheus.Gauge
	chlogPromise func(*kgo.Record, error)
	// batchEnd is the changelog record that closes the cycle's batch in
	// at-least-once mode, held back until the rest is acknowledged.
	batchEnd *kgo.Record
	err      error
}

func newWorker(p *Processor, id int32, part *state.Partition) (*worker, error) {
	w := &worker{workerEnv: &p.env, id: id, part: part, log: p.log.With(zap.Int32("partition", id)), firedTo: noTime, firedToCommitted: noTime}
	pl := strconv.Itoa(int(id))
	for i, t := range p.cfg.Inputs() {
		w.inputs = append(w.inputs, input{
			topic:      t,
			source:     p.sources[i],
			dec:        p.decoders[i],
			events:     p.m.events.WithLabelValues(t, pl),
			lost:       p.m.inputLost.WithLabelValues(t, pl),
			duplicates: p.m.duplicates.WithLabelValues(t),
			late:       p.m.late.WithLabelValues(t),
			maxTs:      noTime,
			raw:        p.newRawOrder(t),
		})
	}
	w.wmLag = p.m.watermarkLag.WithLabelValues(pl)
	w.waiting = p.m.waiting.WithLabelValues(pl)
	for k := range w.chlogRecords {
		w.chlogRecords[k][0] = p.m.changelog.WithLabelValues(state.RecordKind(k).String(), "set")
		w.chlogRecords[k][1] = p.m.changelog.WithLabelValues(state.RecordKind(k).String(), "delete")
		w.chlogByteCount[k] = p.m.changelogBytes.WithLabelValues(state.RecordKind(k).String())
	}
	p.m.timersPend.WithLabelValues(pl).Set(float64(part.PendingTimers()))
	w.writeBack = p.m.writeBack.WithLabelValues(pl)
	w.writeBack.Set(float64(part.WriteBackBytes()))
	w.chlogPromise = func(r *kgo.Record, err error) {
		if err != nil {
			p.out.failed(r, err)
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
		if ts, ok := offs.Progress[w.inputs[i].topic]; ok {
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
	// Timers up to the watermark stored with the state fired before the
	// restart, so a record stamped behind it is late here too.
	if offs.HasFired {
		w.firedTo, w.firedToCommitted = offs.Fired, offs.Fired
	}
	w.creditFrom = p.clock().Add(p.cfg.ReconnectGrace).UnixMilli()
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
	w.chlogBytes = [state.NumRecordKinds]int{}
	w.batchEnd = nil
	w.firedToCommitted = w.firedTo
	nowMs := now.UnixMilli()
	for i := range w.inputs {
		in := &w.inputs[i]
		in.consumed = 0
		in.lateThisCycle = 0
		if len(in.recs) == 0 {
			continue
		}
		// Records the state already holds are skipped (see unapplied).
		if in.recs = w.g.unapplied(in.recs, in.next); len(in.recs) == 0 {
			continue
		}
		w.checkLost(in)
		if err := w.admit(in, now, nowMs); err != nil {
			return err
		}
		w.part.SetOffset(in.topic, in.next)
		if in.maxTs != noTime {
			w.part.SetProgress(in.topic, in.maxTs)
		}
	}
	for {
		i, ok := w.next(nowMs)
		if !ok {
			break
		}
		in := &w.inputs[i]
		q := in.queue.pop()
		if err := w.fireUpTo(now, time.UnixMilli(w.orderTs(q.ts, nowMs)).Add(-w.cfg.Lateness)); err != nil {
			return err
		}
		if err := w.handle(in, q, now); err != nil {
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
	if w.firedTo != w.firedToCommitted && w.firedTo != noTime {
		w.part.SetFired(w.firedTo)
	}
	for i := range w.inputs {
		in := &w.inputs[i]
		in.queue.compact()
		err := in.queue.each(func(q *queued) error {
			if q.stored {
				return nil
			}
			if err := w.part.Hold(state.HeldRecord{Input: uint8(in.source), Offset: q.r.Offset,
				Time: time.UnixMilli(q.ts), Key: q.r.Key, Value: q.r.Value}); err != nil {
				return err
			}
			q.stored = true
			return nil
		})
		if err != nil {
			return err
		}
	}
	if w.g.closesBatches() {
		// At-least-once: every batch's changelog records end with the
		// offsets record, which is how a restore tells a whole batch
		// from one a crash cut short (restore.go).
		in := &w.inputs[0]
		w.part.SetProgress(in.topic, in.maxTs)
	}
	return w.part.Changes(func(key, value []byte) error {
		op := 0
		if value == nil {
			op = 1
		}
		w.chlogCount[state.KindOf(key)][op]++
		w.chlogBytes[state.KindOf(key)] += len(key) + len(value)
		// The buffers stay valid until Commit or Abort, which come
		// after End has flushed this record: no copy needed.
		// At-least-once holds back the record that closes the batch.
		w.g.produceChangelog(w, &kgo.Record{Topic: w.cfg.Topics.Changelog, Partition: w.id, Key: key, Value: value})
		return nil
	})
}

// loadHeld rebuilds the input queues from the state's committed held
// records, after a restore or an aborted transaction.
func (w *worker) loadHeld() error {
	bySource := map[uint8]*input{}
	for i := range w.inputs {
		in := &w.inputs[i]
		in.queue.reset()
		bySource[uint8(in.source)] = in
	}
	arrived := w.clock().UnixMilli()
	defer w.reloaded() // repartition_order.go
	return w.part.Held(func(h state.HeldRecord) error {
		in := bySource[h.Input]
		if in == nil {
			return fmt.Errorf("processor: held record of unknown input %d", h.Input)
		}
		r := &kgo.Record{Topic: in.topic, Partition: w.id, Offset: h.Offset, Timestamp: h.Time,
			Key: bytes.Clone(h.Key), Value: bytes.Clone(h.Value)}
		// Arrived now, as far as the idle grace is concerned: a
		// record held across a restart waits for the grace again.
		in.queue.append(queued{r: r, ts: h.Time.UnixMilli(), arrived: arrived, stored: true})
		return nil
	})
}

// fireUpTo fires the timers due at or before upTo, up to the cycle's
// limit, through the same rules and output path as events.
func (w *worker) fireUpTo(now, wm time.Time) error {
	if !w.hasDue || w.nextDue.After(wm) {
		w.firedTo = max(w.firedTo, wm.UnixMilli())
		return nil
	}
	for w.timersFired < w.cfg.TimersPerCycle {
		limit := min(256, w.cfg.TimersPerCycle-w.timersFired)
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
			// At the watermark: a calendar rule whose occurrences were
			// missed (a backlog, a profile stamped years back) sends only
			// the latest, if not expired (rules.Set.OnTimersAt).
			w.ruleSet().OnTimersAt(c, w.due[i:j], wm, &w.actions)
			w.logEvalErrors(t.Customer)
			if w.trace != "" && strings.HasPrefix(string(t.Customer), w.trace) {
				w.log.Info("trace timer", zap.String("customer", string(t.Customer)), zap.Time("due", t.Due), zap.Time("wm", wm),
					zap.Int32("stage", t.Stage), zap.String("occurrence", t.Occurrence), zap.Int("timers", j-i), zap.Int("emit", len(w.actions.Emit)))
			}
			if err := w.apply(c, now); err != nil {
				return err
			}
			for ; i < j; i++ {
				w.m.fireLag.Observe(now.Sub(w.due[i].Due).Seconds())
			}
		}
		w.timersFired += len(w.due)
		w.m.timersFired.Add(float64(len(w.due)))
		if len(w.due) > 0 {
			w.firedTo = max(w.firedTo, w.due[len(w.due)-1].Due.UnixMilli())
		}
		if len(w.due) == 0 {
			// Every timer due by wm has fired, those the firing
			// scheduled too: a stage due by wm (a backlog longer
			// than the gap between two stages) fires now, before
			// the record that may cancel it.
			w.firedTo = max(w.firedTo, wm.UnixMilli())
			break
		}
	}
	return w.refreshNextDue()
}

// handle runs the rules on one admitted record. A bad record is
// dead-lettered and is not an error; an error is fatal (state failure).
func (w *worker) handle(in *input, q queued, now time.Time) error {
	d := q.ev
	if d == nil {
		var err error
		if d, err = w.decodeHeld(in, q.r, now); d == nil {
			return err
		}
	}
	defer w.putDecoded(d)
	ev := &d.ev
	if ev.Type == schemas.ProfileErase && in.source == schemas.SourceProfile {
		// Before the catalogue check: an erase is never dead-lettered
		// for want of a line in the rules file.
		return w.erase(ev, now)
	}
	rs := w.ruleSet()
	if !rs.Accepts(ev.Type) {
		w.deadLetter(in, q.r, "unknown_type", "event type "+strconv.Quote(string(ev.Type))+" is not in the rules file's events catalogue", now)
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
	if q.late {
		recordLate(c, in.topic, ev, now)
	}
	if w.trace != "" && strings.HasPrefix(string(ev.Customer), w.trace) {
		w.log.Info("trace event", zap.String("customer", string(ev.Customer)), zap.String("event", ev.ID),
			zap.String("type", string(ev.Type)), zap.Time("at", ev.Time), zap.Int64("offset", q.r.Offset),
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
	w.m.evalErrors.Add(float64(len(w.actions.Errors)))
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
		if err := w.emit(tr); err != nil {
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
func (w *worker) deadLetter(in *input, r *kgo.Record, reason, detail string, now time.Time, extra ...kgo.RecordHeader) {
	w.out.produce(deadLetterRecord(w.cfg.Topics.DeadLetter, in.topic, r, reason, detail, now, extra...), w.out.promise)
	w.m.deadLettered.WithLabelValues(in.topic, reason).Inc()
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
	if w.trace != "" {
		offs, _ := w.part.Offsets()
		w.log.Info("trace commit", zap.Int64("changelog", offs.Changelog), zap.Any("inputs", offs.Inputs))
	}
	w.m.timersPend.WithLabelValues(strconv.Itoa(int(w.id))).Set(float64(w.part.PendingTimers()))
	w.writeBack.Set(float64(w.part.WriteBackBytes()))
	w.countSuppressed()
	for i := range w.inputs {
		in := &w.inputs[i]
		in.events.Add(float64(in.consumed))
		w.stats.events.Add(int64(in.consumed))
		in.consumed = 0
		if in.lateThisCycle > 0 {
			in.late.Add(float64(in.lateThisCycle))
			in.lateThisCycle = 0
		}
	}
	w.stats.deadLetters.Add(int64(w.deadLettered))
	w.deadLettered = 0
	for k, n := range w.chlogBytes {
		if n > 0 {
			w.chlogByteCount[k].Add(float64(n))
		}
	}
	for k := range w.chlogCount {
		for op, n := range w.chlogCount[k] {
			if n > 0 {
				w.chlogRecords[k][op].Add(float64(n))
			}
		}
	}
	if w.erased > 0 {
		w.m.erasures.Add(float64(w.erased))
		w.stats.erasures.Add(int64(w.erased))
		w.erased = 0
	}
	return nil
}

// abort drops the cycle's changes after the transaction aborted. Input
// progress goes back too: the records will be polled again.
func (w *worker) abort() error {
	w.part.Abort()
	w.firedTo = w.firedToCommitted
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
		if ts, ok := offs.Progress[in.topic]; ok {
			in.maxTs = ts
		}
		in.next = -1
		if o, ok := offs.Inputs[in.topic]; ok {
			in.next = o
		}
		in.caughtUpAt = 0
	}
	return w.refreshNextDue()
}
