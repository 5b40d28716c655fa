package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/triggerd/triggerd/schemas"
)

// Set is a compiled rules file. It is immutable and safe for concurrent use
// by every partition worker; to change the rules, compile a new Set and
// swap it in.
type Set struct {
	name     string
	catalog  map[schemas.EventType]bool // nil: every type accepted
	zones    zones
	expiry   time.Duration
	priority int32
	channel  schemas.Channel
	dedupe   struct {
		window time.Duration
		max    int
	}
	segments *segments
	policy   *policy // nil: no contact policy
	aggs     []*aggregate
	aggIndex map[string]int

	rules      []*rule
	byID       map[schemas.RuleID]*rule
	byType     map[schemas.EventType]*typeRules
	anySilence []*rule
	calendars  []*rule
}

// typeRules are the rules and aggregates an event type concerns, so an
// event evaluates only what names its type.
type typeRules struct {
	aggs       []int
	exits      []*rule
	starts     []*rule
	on         []*rule
	thresholds []*rule
	silences   []*rule
}

func (s *Set) typeRules(t schemas.EventType) *typeRules {
	tr := s.byType[t]
	if tr == nil {
		tr = &typeRules{}
		s.byType[t] = tr
	}
	return tr
}

func (s *Set) index() {
	for i, a := range s.aggs {
		for _, t := range a.on {
			s.typeRules(t).aggs = append(s.typeRules(t).aggs, i)
		}
	}
	for _, r := range s.rules {
		switch r.start {
		case startOn:
			for _, t := range r.on {
				s.typeRules(t).on = append(s.typeRules(t).on, r)
			}
		case startThreshold:
			for _, t := range r.on {
				s.typeRules(t).thresholds = append(s.typeRules(t).thresholds, r)
			}
		case startSequence:
			for _, t := range r.seq.startOn {
				s.typeRules(t).starts = append(s.typeRules(t).starts, r)
			}
			for _, t := range r.seq.exitOn {
				s.typeRules(t).exits = append(s.typeRules(t).exits, r)
			}
		case startSilence:
			if r.sil.any {
				s.anySilence = append(s.anySilence, r)
			}
			for _, t := range r.sil.on {
				s.typeRules(t).silences = append(s.typeRules(t).silences, r)
			}
		case startCalendar:
			s.calendars = append(s.calendars, r)
		}
	}
}

// Name is the file name the set was compiled from.
func (s *Set) Name() string { return s.name }

// Dedupes reports whether the rules skip repeated event IDs (dedupe).
func (s *Set) Dedupes() bool { return s.dedupe.window > 0 }

// Accepts reports whether events of type t are accepted: always when the
// rules file declares no events catalogue; otherwise when t is declared.
// The processor dead-letters other types as "unknown_type".
func (s *Set) Accepts(t schemas.EventType) bool {
	return s.catalog == nil || s.catalog[t]
}

// DefaultZone is the zone used for customers without a known time zone.
func (s *Set) DefaultZone() *time.Location { return s.zones.def }

// RuleInfo describes one rule, for listings.
type RuleInfo struct {
	ID      schemas.RuleID
	Version int32
	Family  Family
	Kind    string
	Start   string // on, sequence, calendar, silence, threshold
	Stages  int
}

// Rules lists the rules in file order.
func (s *Set) Rules() []RuleInfo {
	out := make([]RuleInfo, 0, len(s.rules))
	for _, r := range s.rules {
		ri := RuleInfo{ID: r.id, Version: r.version, Family: r.family, Kind: r.kind, Start: r.start.String(), Stages: 1}
		if r.seq != nil {
			ri.Stages = len(r.seq.stages)
		}
		out = append(out, ri)
	}
	return out
}

// emptyEvent is the event a timer is evaluated with: every field zero,
// event.type "". It is never written.
var emptyEvent schemas.Event

// OnEvent updates c for ev and appends to a what the rules ask for. ev has
// been validated by the decoder (customer, ID, type and time are set). A
// duplicate event (same ID within the dedupe window) changes nothing and
// sets a.Duplicate.
func (s *Set) OnEvent(c *schemas.Customer, ev *schemas.Event, a *Actions) {
	if s.isDuplicate(c, ev) {
		a.Duplicate = true
		return
	}
	st := a.state()
	from := len(a.Emit)
	tr := s.byType[ev.Type]
	s.engaged(c, ev.Type)
	takeSnapshot(&st.pre, c, ev)
	st.bind(s, c, ev, ev.Time)

	// Threshold rules compare their value before and after the event.
	st.thrBefore = st.thrBefore[:0]
	if tr != nil && len(tr.thresholds) > 0 {
		st.beforeMode = true
		for _, r := range tr.thresholds {
			v, ok := st.evalInt(r.thr.value, r.id, "threshold.value")
			if !ok {
				v = r.thr.atLeast // an error never counts as a crossing
			}
			st.thrBefore = append(st.thrBefore, v)
		}
		st.beforeMode = false
	}

	applyEvent(c, ev, s.zones.get(c.Profile.TimeZone))
	st.refreshCurrency()
	if tr != nil {
		for _, i := range tr.aggs {
			st.updateAgg(i)
		}
	}
	var segFrom string
	segChanged := false
	if s.segments != nil {
		segFrom, segChanged = s.segments.update(c, ev.Time)
	}
	s.maintain(c, ev.Time, a)
	s.evaluate(st, tr, a, false)
	s.calendarCheck(st, a)

	if segChanged {
		// The segment change is an event of its own that rules may
		// react to, caused by ev and at its time.
		syn := &st.synthetic
		*syn = schemas.Event{ID: ev.ID + "/" + string(SegmentChanged), Customer: c.ID, Type: SegmentChanged,
			Time: ev.Time, Properties: map[string]string{"from": segFrom, "to": c.RFM.Segment}}
		st.bind(s, c, syn, ev.Time)
		s.evaluate(st, s.byType[SegmentChanged], a, true)
	}
	s.contact(c, ev.Time, a, from)
}

// evaluate runs the rules of one event type.
func (s *Set) evaluate(st *evalState, tr *typeRules, a *Actions, synthetic bool) {
	if tr != nil {
		for _, r := range tr.exits {
			s.seqExit(st, r, a)
		}
		for _, r := range tr.starts {
			s.seqStart(st, r, a)
		}
		for _, r := range tr.on {
			s.onEvent(st, r, a)
		}
		for i, r := range tr.thresholds {
			if !synthetic {
				s.thresholdCheck(st, r, st.thrBefore[i], a)
			}
		}
		for _, r := range tr.silences {
			s.silenceTouch(st, r, a)
		}
	}
	if !synthetic {
		for _, r := range s.anySilence {
			s.silenceTouch(st, r, a)
		}
	}
}

// OnTimer evaluates a due timer t of customer c and appends to a what the
// rules ask for. The timer has already been removed from the pending set.
// Exit criteria are checked again here, against the state at fire time. A
// timer of a rule that no longer exists fires into nothing. The contact
// policy decides on the triggers of this timer alone; see OnTimers. It
// fires at the timer's due time; see OnTimersAt for a timer fired late.
func (s *Set) OnTimer(c *schemas.Customer, t *schemas.Timer, a *Actions) {
	from := len(a.Emit)
	s.onTimer(c, t, t.Due, a)
	s.contact(c, t.Due, a, from)
}

// OnTimers evaluates the due timers ts of customer c, all due at the same
// instant (the caller groups them: the store fires in due, customer, ID
// order), and then applies the contact policy to their triggers together,
// so they compete for the last slot of a cap by priority, as the triggers
// of one event do. Grouping by instant, not by the processor's batch,
// keeps the decision the same in a replay as in live traffic. The timers
// fire at their due time: OnTimersAt with now = their due time.
func (s *Set) OnTimers(c *schemas.Customer, ts []schemas.Timer, a *Actions) {
	if len(ts) == 0 {
		return
	}
	s.OnTimersAt(c, ts, ts[0].Due, a)
}

// OnTimersAt is OnTimers for timers that fire at now, the caller's event
// time (the partition's watermark), which may be long after they were due:
// a backlog, an event stamped years back that scheduled a calendar rule
// from its own time. A calendar rule then catches up (calendarFire): only
// the latest of its occurrences due by now counts, and only if its trigger
// is not expired by now; the others are suppressed, not sent. A now before
// the timers' due time counts as their due time.
func (s *Set) OnTimersAt(c *schemas.Customer, ts []schemas.Timer, now time.Time, a *Actions) {
	if len(ts) == 0 {
		return
	}
	if now.Before(ts[0].Due) {
		now = ts[0].Due
	}
	from := len(a.Emit)
	for i := range ts {
		s.onTimer(c, &ts[i], now, a)
	}
	s.contact(c, ts[0].Due, a, from)
}

func (s *Set) onTimer(c *schemas.Customer, t *schemas.Timer, now time.Time, a *Actions) {
	if t.Deferred != nil {
		s.release(c, t, a)
		return
	}
	r := s.byID[t.Rule]
	if r == nil {
		s.maintain(c, t.Due, a)
		return
	}
	st := a.state()
	takeSnapshot(&st.pre, c, &emptyEvent)
	st.bind(s, c, &emptyEvent, t.Due)
	switch r.start {
	case startSequence:
		s.seqFire(st, r, t, a)
	case startCalendar:
		s.calendarFire(st, r, t, now, a)
	case startSilence:
		s.silenceFire(st, r, t, a)
	}
}

// maintain prunes what the rules no longer need: expired marks, runs of
// rules that were removed (their timers are cancelled), and windows of
// aggregates that are no longer declared.
func (s *Set) maintain(c *schemas.Customer, now time.Time, a *Actions) {
	n := 0
	for i := range c.Marks {
		m := &c.Marks[i]
		if !m.Expires.IsZero() && !m.Expires.After(now) {
			continue
		}
		if n != i {
			c.Marks[n], c.Marks[i] = c.Marks[i], c.Marks[n]
		}
		n++
	}
	c.Marks = c.Marks[:n]
	for i := 0; i < len(c.Runs); {
		if s.byID[c.Runs[i].Rule] == nil {
			if c.Runs[i].Stage != 0 {
				a.Cancel = append(a.Cancel, TimerRef{Customer: c.ID, ID: timerID(c.Runs[i].Rule, c.Runs[i].Key)})
			}
			removeRun(c, i)
			continue
		}
		i++
	}
	for i := 0; i < len(c.Aggregates); {
		if _, ok := s.aggIndex[c.Aggregates[i].Name]; !ok {
			last := len(c.Aggregates) - 1
			c.Aggregates[i], c.Aggregates[last] = c.Aggregates[last], c.Aggregates[i]
			c.Aggregates = c.Aggregates[:last]
			continue
		}
		i++
	}
}

func findRun(c *schemas.Customer, r schemas.RuleID, key string) int {
	for i := range c.Runs {
		if c.Runs[i].Rule == r && c.Runs[i].Key == key {
			return i
		}
	}
	return -1
}

// removeRun deletes run i, keeping the order of the others (the record
// encodes in order) and the removed slot's Due capacity for reuse.
func removeRun(c *schemas.Customer, i int) {
	removed := c.Runs[i]
	copy(c.Runs[i:], c.Runs[i+1:])
	last := len(c.Runs) - 1
	c.Runs[last] = schemas.Run{Due: removed.Due[:0]}
	c.Runs = c.Runs[:last]
}

func marked(c *schemas.Customer, r schemas.RuleID, key string, now time.Time) bool {
	for i := range c.Marks {
		m := &c.Marks[i]
		if m.Rule == r && m.Key == key && (m.Expires.IsZero() || m.Expires.After(now)) {
			return true
		}
	}
	return false
}

func setMark(c *schemas.Customer, r schemas.RuleID, key string, now time.Time, period time.Duration) {
	var exp time.Time
	if period > 0 {
		exp = now.Add(period)
	}
	oldest, n := -1, 0
	for i := range c.Marks {
		m := &c.Marks[i]
		if m.Rule != r {
			continue
		}
		if m.Key == key {
			m.At, m.Expires = now, exp
			return
		}
		if n++; oldest < 0 || m.At.Before(c.Marks[oldest].At) {
			oldest = i
		}
	}
	if n >= maxMarksPerRule {
		// Bounded like runs (maxRunsPerRule): the oldest key's mark
		// gives way, so that key may fire again.
		c.Marks[oldest] = schemas.Mark{Rule: r, Key: key, At: now, Expires: exp}
		return
	}
	c.Marks = append(c.Marks, schemas.Mark{Rule: r, Key: key, At: now, Expires: exp})
}

// maxMarksPerRule bounds the once-marks one rule keeps for one customer (one
// per product, per order, per currency).
const maxMarksPerRule = 64

// onEvent runs an "on" rule: it fires at once when its condition holds,
// within its once / once_per limit.
func (s *Set) onEvent(st *evalState, r *rule, a *Actions) {
	if r.when != nil && !st.cond(r.when, r.id, "when") {
		return
	}
	key := ""
	if r.once != nil {
		if r.once.key != nil {
			k, ok := st.evalString(r.once.key, r.id, "once_per.key")
			if !ok {
				return
			}
			key = k
		}
		if marked(st.c, r.id, key, st.ev.Time) {
			return
		}
		setMark(st.c, r.id, key, st.ev.Time, r.once.period)
	}
	s.emit(st, r, 1, r.channel, nil, st.ev.ID, st.ev.Time, st.ev.ID, a)
}

// thresholdCheck fires once per key when the value crosses at_least with
// this event: before < at_least <= after.
func (s *Set) thresholdCheck(st *evalState, r *rule, before int64, a *Actions) {
	after, ok := st.evalInt(r.thr.value, r.id, "threshold.value")
	if !ok || before >= r.thr.atLeast || after < r.thr.atLeast {
		return
	}
	key := ""
	if r.thr.key != nil {
		if key, ok = st.evalString(r.thr.key, r.id, "threshold.key"); !ok {
			return
		}
	}
	if marked(st.c, r.id, key, st.ev.Time) {
		return
	}
	setMark(st.c, r.id, key, st.ev.Time, 0)
	occ := key
	if occ == "" {
		occ = string(r.id)
	}
	s.emit(st, r, 1, r.channel, nil, occ, st.ev.Time, st.ev.ID, a)
}

// emit appends the trigger of rule r's stage to a.
func (s *Set) emit(st *evalState, r *rule, stage int32, ch schemas.Channel, stagePayload []payloadField,
	occurrence string, due time.Time, causedBy string, a *Actions) {
	a.Emit = append(a.Emit, s.trigger(st, r, stage, ch, stagePayload, occurrence, due, causedBy))
}

// trigger builds the trigger of rule r's stage.
func (s *Set) trigger(st *evalState, r *rule, stage int32, ch schemas.Channel, stagePayload []payloadField,
	occurrence string, due time.Time, causedBy string) schemas.Trigger {
	c := st.c
	tr := schemas.Trigger{
		ID:          TriggerID(c.ID, r.id, r.version, stage, occurrence),
		Rule:        r.id,
		RuleVersion: r.version,
		Kind:        r.kind,
		Stage:       stage,
		Channel:     ch,
		Priority:    r.priority,
		Customer:    c.ID,
		DueAt:       due,
		ExpiresAt:   due.Add(r.expiry),
	}
	if causedBy != "" {
		tr.CausedBy = []string{causedBy}
	}
	switch r.attach {
	case "cart":
		tr.Items = append([]schemas.Item(nil), c.Cart.Items...)
		tr.Value = c.Cart.Value()
	case "order":
		tr.Items = append([]schemas.Item(nil), st.ev.Items...)
		tr.Value = st.ev.Amount
	}
	if len(r.payload)+len(stagePayload) > 0 {
		tr.Attributes = make(map[string]string, len(r.payload)+len(stagePayload))
		for _, lists := range [2][]payloadField{r.payload, stagePayload} {
			for _, p := range lists {
				v, _, err := p.prg.Eval(st)
				if err != nil {
					st.fail(r.id, "payload "+p.name, err)
					continue
				}
				tr.Attributes[p.name] = stringify(v)
			}
		}
	}
	return tr
}

// stringify renders a payload value for the trigger's attributes.
func stringify(v ref.Val) string {
	switch x := v.(type) {
	case types.String:
		return string(x)
	case types.Int:
		return strconv.FormatInt(int64(x), 10)
	case types.Bool:
		return strconv.FormatBool(bool(x))
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339)
	case types.Duration:
		return formatDuration(x.Duration)
	case types.Double:
		return strconv.FormatFloat(float64(x), 'g', -1, 64)
	}
	return fmt.Sprint(v.Value())
}

func (st *evalState) fail(r schemas.RuleID, what string, err error) {
	if len(st.a.Errors) < 16 {
		st.a.Errors = append(st.a.Errors, &EvalError{Rule: r, Expression: what, Err: err})
	}
}

// cond evaluates a condition; an error counts as false.
func (st *evalState) cond(p cel.Program, r schemas.RuleID, what string) bool {
	v, _, err := p.Eval(st)
	if err != nil {
		st.fail(r, what, err)
		return false
	}
	return v == types.True
}

func (st *evalState) evalInt(p cel.Program, r schemas.RuleID, what string) (int64, bool) {
	v, _, err := p.Eval(st)
	if err != nil {
		st.fail(r, what, err)
		return 0, false
	}
	i, ok := v.(types.Int)
	if !ok {
		st.fail(r, what, fmt.Errorf("got %s, want int", v.Type()))
	}
	return int64(i), ok
}

func (st *evalState) evalString(p cel.Program, r schemas.RuleID, what string) (string, bool) {
	v, _, err := p.Eval(st)
	if err != nil {
		st.fail(r, what, err)
		return "", false
	}
	s, ok := v.(types.String)
	if !ok {
		st.fail(r, what, fmt.Errorf("got %s, want string", v.Type()))
	}
	return string(s), ok
}

func (st *evalState) evalTime(p cel.Program, r schemas.RuleID, what string) (time.Time, bool) {
	v, _, err := p.Eval(st)
	if err != nil {
		st.fail(r, what, err)
		return time.Time{}, false
	}
	t, ok := v.(types.Timestamp)
	if !ok {
		st.fail(r, what, fmt.Errorf("got %s, want timestamp", v.Type()))
	}
	return t.Time.UTC(), ok
}

// TriggerID derives the deterministic ID of a trigger: the same customer,
// rule, version, stage and occurrence always give the same ID, so a replay
// or an at-least-once duplicate carries the ID a sender has already seen.
func TriggerID(c schemas.CustomerID, rule schemas.RuleID, version, stage int32, occurrence string) string {
	h := sha256.New()
	var n [8]byte
	writeField := func(s string) {
		binary.BigEndian.PutUint32(n[:4], uint32(len(s)))
		h.Write(n[:4])
		h.Write([]byte(s))
	}
	writeField(string(c))
	writeField(string(rule))
	binary.BigEndian.PutUint32(n[:4], uint32(version))
	binary.BigEndian.PutUint32(n[4:], uint32(stage))
	h.Write(n[:])
	writeField(occurrence)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
