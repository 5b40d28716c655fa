package rules

import (
	"cmp"
	"slices"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// The contact policy stands between the rules and the outbound topic: every
// marketing trigger an evaluation produces passes it before it is written.
// It is data (the rules file's policy section, compiled with the rules) and
// it is pure like the rest of the package: the customer record holds the
// contact history it counts, the time is the evaluation's event time, and
// its decisions come back in Actions (Emit keeps what goes out, Suppress
// records what was stopped or held back, Schedule holds the timers of
// deferred triggers). The processor carries them out in one Kafka
// transaction and one Pebble batch, so a crash can neither send a capped
// message nor count one that was never sent.
//
// A rules file without a policy section has no policy: every trigger goes
// out and the record keeps no contact history.

// Suppression reasons and policy names, as written to the suppressions
// topic and the metrics.
const (
	ReasonCap         = "cap"
	ReasonQuietHours  = "quiet_hours"
	ReasonNoConsent   = "no_consent"
	ReasonNoResponse  = "no_response"
	ReasonStale       = "stale"
	ReasonRuleRemoved = "rule_removed"
	// A calendar rule's timer that fires late (calendarFire): an
	// occurrence passed over because a later one is due too, and one whose
	// trigger is expired by the time it fires.
	ReasonSuperseded = "superseded"
	ReasonExpired    = "expired"

	PolicyQuietHours = "quiet_hours"
	PolicyConsent    = "consent"
	PolicyStopAfter  = "stop_after"
	PolicyMaxDelay   = "max_delay"
	PolicyRules      = "rules"
	PolicyCatchUp    = "catch_up"
)

// DeferPrefix starts the ID of every timer that holds a deferred trigger,
// so they never collide with the rules' own timers.
const DeferPrefix = "~defer/"

// maxContacts bounds the contact history whatever the caps: a channel
// without a cap would otherwise let it grow with the window.
const maxContacts = 128

type consentMode uint8

const (
	consentOptIn  consentMode = iota // a channel needs an explicit opt-in
	consentOptOut                    // only an explicit opt-out (unsubscribe) blocks
)

type policy struct {
	exemptFamilies map[Family]bool
	exemptKinds    map[string]bool
	consent        consentMode
	caps           []capSpec
	maxWindow      time.Duration // the longest cap window: how much history is kept
	quiet          *quietHours
	stopAfter      int32 // 0: off
	engagement     map[schemas.EventType]bool
}

// capSpec is one cap: at most max marketing triggers within window, counting
// those of channel (all channels when empty) and of rule (all rules when
// empty). A segment may have its own max.
type capSpec struct {
	name     string
	channel  schemas.Channel
	rule     schemas.RuleID
	max      int
	window   time.Duration
	segments map[string]int
}

func (cp *capSpec) applies(ch schemas.Channel, r schemas.RuleID) bool {
	return (cp.channel == "" || cp.channel == ch) && (cp.rule == "" || cp.rule == r)
}

func (cp *capSpec) limit(segment string) int {
	if n, ok := cp.segments[segment]; ok {
		return n
	}
	return cp.max
}

// quietHours is a daily local-time window, in minutes of the day; from >
// to wraps past midnight (21:00 to 08:00).
type quietHours struct {
	from, to int
}

func (q *quietHours) contains(m int) bool {
	if q.from < q.to {
		return m >= q.from && m < q.to
	}
	return m >= q.from || m < q.to
}

// end returns the next instant after now, local time in loc, that is
// outside the quiet hours, given that now is inside them. A DST gap moves
// the end forward like every local time (localTime).
func (q *quietHours) end(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	d := schemas.Date{Year: l.Year(), Month: l.Month(), Day: l.Day()}
	if q.from > q.to && l.Hour()*60+l.Minute() >= q.from {
		d = addDays(d, 1)
	}
	t := localTime(d, q.to/60, q.to%60, loc)
	if !t.After(now) {
		t = localTime(addDays(d, 1), q.to/60, q.to%60, loc)
	}
	return t
}

// ruleContact is a rule's own contact settings.
type ruleContact struct {
	quietDrop bool          // in quiet hours: drop instead of defer
	maxDelay  time.Duration // a deferred trigger released later than this after its due time is stale
}

// HasPolicy reports whether the rules file has a contact policy.
func (s *Set) HasPolicy() bool { return s.policy != nil }

func (s *Set) exempt(r *rule) bool {
	p := s.policy
	return p.exemptFamilies[r.family] || p.exemptKinds[r.kind]
}

// engaged notes an engagement event: the unanswered count starts again.
func (s *Set) engaged(c *schemas.Customer, t schemas.EventType) {
	if s.policy != nil && s.policy.engagement[t] {
		c.Unanswered = 0
	}
}

// cancelDeferred cancels the deferred triggers of a sequence run that ends
// (its exit held, or a restart replaced it): a deferred stage is a pending
// stage, and the exit criteria apply to it as to the others.
func (s *Set) cancelDeferred(c *schemas.Customer, r *rule, run *schemas.Run, a *Actions) {
	if s.policy == nil || s.exempt(r) {
		return
	}
	for j := range r.seq.stages {
		id := TriggerID(c.ID, r.id, r.version, int32(j+1), run.Occurrence)
		a.Cancel = append(a.Cancel, TimerRef{Customer: c.ID, ID: DeferPrefix + id})
	}
}

// release handles a due timer that holds a deferred trigger: stale and
// orphaned triggers are suppressed here; the others join the evaluation's
// candidates and pass the policy again (caps, consent, no response).
func (s *Set) release(c *schemas.Customer, t *schemas.Timer, a *Actions) {
	tr := *t.Deferred
	r := s.byID[tr.Rule]
	switch {
	case r == nil:
		s.suppress(a, &tr, ReasonRuleRemoved, PolicyRules, t.Due)
	case s.policy == nil || s.exempt(r):
		a.Emit = append(a.Emit, tr) // the policy was removed since: send
	case t.Due.Sub(tr.DueAt) > r.contact.maxDelay:
		s.suppress(a, &tr, ReasonStale, PolicyMaxDelay, t.Due)
	default:
		a.Emit = append(a.Emit, tr)
	}
}

func (s *Set) suppress(a *Actions, tr *schemas.Trigger, reason, policy string, now time.Time) {
	a.Suppress = append(a.Suppress, schemas.Suppression{Trigger: *tr, Action: schemas.ActionSuppressed,
		Reason: reason, Policy: policy, DecidedAt: now})
}

// contact applies the policy to a.Emit[from:], the triggers of one
// evaluation (one event, or the timers of one customer due at one instant),
// decided at now. Exempt triggers pass untouched. The others are taken in
// priority order (higher first, then rule ID, then stage), so the higher
// priority takes the last slot of a cap; a loser is suppressed at once:
// nothing waits for a rival. Each trigger that goes out is counted in the
// contact history before the next one is checked.
func (s *Set) contact(c *schemas.Customer, now time.Time, a *Actions, from int) {
	p := s.policy
	if p == nil {
		return
	}
	pruneContacts(c, now, p.maxWindow)
	cands := a.Emit[from:]
	if len(cands) == 0 {
		return
	}
	order := a.state().order[:0]
	for i := range cands {
		if r := s.byID[cands[i].Rule]; r == nil || !s.exempt(r) {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return
	}
	slices.SortStableFunc(order, func(i, j int) int {
		x, y := &cands[i], &cands[j]
		if c := cmp.Compare(y.Priority, x.Priority); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Rule, y.Rule); c != 0 {
			return c
		}
		return cmp.Compare(x.Stage, y.Stage)
	})
	keep := slices.Grow(a.state().keep[:0], len(cands))[:len(cands)]
	for i := range keep {
		keep[i] = true
	}
	loc := s.zones.get(c.Profile.TimeZone)
	for _, i := range order {
		tr := &cands[i]
		keep[i] = false
		r := s.byID[tr.Rule]
		if !p.consented(c, tr.Channel) {
			s.suppress(a, tr, ReasonNoConsent, PolicyConsent, now)
			continue
		}
		if p.stopAfter > 0 && c.Unanswered >= p.stopAfter {
			s.suppress(a, tr, ReasonNoResponse, PolicyStopAfter, now)
			continue
		}
		if cp := p.capped(c, tr, now); cp != nil {
			s.suppress(a, tr, ReasonCap, cp.name, now)
			continue
		}
		if q := p.quiet; q != nil {
			if l := now.In(loc); q.contains(l.Hour()*60 + l.Minute()) {
				if r != nil && r.contact.quietDrop {
					s.suppress(a, tr, ReasonQuietHours, PolicyQuietHours, now)
					continue
				}
				until := q.end(now, loc)
				held := *tr
				a.Schedule = append(a.Schedule, schemas.Timer{Customer: c.ID, ID: DeferPrefix + tr.ID, Due: until,
					Rule: tr.Rule, Stage: tr.Stage, Occurrence: tr.ID, CausedBy: tr.CausedBy, Deferred: &held})
				a.Suppress = append(a.Suppress, schemas.Suppression{Trigger: *tr, Action: schemas.ActionDeferred,
					Reason: ReasonQuietHours, Policy: PolicyQuietHours, DecidedAt: now, DeferredTo: until})
				continue
			}
		}
		keep[i] = true
		if p.maxWindow > 0 { // no cap, no history to keep
			if len(c.Contacts) >= maxContacts {
				c.Contacts = append(c.Contacts[:0], c.Contacts[1:]...)
			}
			c.Contacts = append(c.Contacts, schemas.Contact{At: now, Channel: tr.Channel, Rule: tr.Rule})
		}
		c.Unanswered++
	}
	n := from
	for i := range cands {
		if keep[i] {
			a.Emit[n] = cands[i]
			n++
		}
	}
	a.Emit = a.Emit[:n]
	a.state().order, a.state().keep = order, keep
}

func (p *policy) consented(c *schemas.Customer, ch schemas.Channel) bool {
	v, ok := c.Profile.OptIns[ch]
	if p.consent == consentOptOut {
		return !ok || v
	}
	return v
}

// capped returns the first cap (in file order) that tr would exceed.
func (p *policy) capped(c *schemas.Customer, tr *schemas.Trigger, now time.Time) *capSpec {
	for i := range p.caps {
		cp := &p.caps[i]
		if !cp.applies(tr.Channel, tr.Rule) {
			continue
		}
		lim := cp.limit(c.RFM.Segment)
		since := now.Add(-cp.window)
		n := 0
		for j := range c.Contacts {
			ct := &c.Contacts[j]
			if ct.At.After(since) && cp.applies(ct.Channel, ct.Rule) {
				n++
			}
		}
		if n >= lim {
			return cp
		}
	}
	return nil
}

// pruneContacts drops contacts no cap can count any more: the history is
// bounded by the longest window.
func pruneContacts(c *schemas.Customer, now time.Time, window time.Duration) {
	since := now.Add(-window)
	drop := 0
	for drop < len(c.Contacts) && !c.Contacts[drop].At.After(since) {
		drop++
	}
	if drop > 0 {
		n := copy(c.Contacts, c.Contacts[drop:])
		c.Contacts = c.Contacts[:n]
	}
}
