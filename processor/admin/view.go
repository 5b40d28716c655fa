package admin

import (
	"slices"
	"time"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
)

// The JSON views: snake_case names, as on the topics. They are built here,
// not by tags on the schemas types, so that the wire shape of the API is
// stated in one place and does not change when a Go field is renamed.

// CustomerView is the answer to GET /customers/{id}.
type CustomerView struct {
	CustomerID string `json:"customer_id"`
	Partition  int32  `json:"partition"`
	Instance   string `json:"instance"` // the instance that answered
	Found      bool   `json:"found"`

	FirstSeen      time.Time `json:"first_seen,omitzero"`
	LastSeen       time.Time `json:"last_seen,omitzero"`
	Events         int64     `json:"events"`
	Purchases      int64     `json:"purchases"`
	Spend          []Money   `json:"spend,omitempty"`
	LastPurchaseAt time.Time `json:"last_purchase_at,omitzero"`

	Profile        Profile    `json:"profile"`
	Cart           Cart       `json:"cart"`
	Segment        Segment    `json:"segment"`
	Windows        []Window   `json:"windows,omitempty"`
	Campaigns      []Campaign `json:"campaigns,omitempty"`
	Marks          []Mark     `json:"marks,omitempty"`
	Contacts       []Contact  `json:"contacts,omitempty"`
	Dedupe         int        `json:"dedupe_event_ids"` // event IDs remembered for deduplication
	Timers         []Timer    `json:"timers,omitempty"`
	Decisions      []Decision `json:"decisions,omitempty"` // oldest first
	LastSeenByType []TypeSeen `json:"last_seen_by_type,omitempty"`
	Unanswered     int32      `json:"unanswered"`
}

type Money struct {
	Minor    int64  `json:"minor"`
	Currency string `json:"currency"`
}

type Profile struct {
	Birthday    string          `json:"birthday,omitempty"`
	SignupDate  string          `json:"signup_date,omitempty"`
	ContractEnd string          `json:"contract_end,omitempty"`
	TimeZone    string          `json:"time_zone,omitempty"`
	Country     string          `json:"country,omitempty"`
	OptIns      map[string]bool `json:"opt_ins,omitempty"`
	UpdatedAt   time.Time       `json:"updated_at,omitzero"`
}

type Item struct {
	ProductID string `json:"product_id"`
	Quantity  int32  `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
}

type Cart struct {
	Items     []Item    `json:"items,omitempty"`
	Value     *Money    `json:"value,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	LastEvent string    `json:"last_event,omitempty"`
}

type Segment struct {
	R     int32  `json:"r"`
	F     int32  `json:"f"`
	M     int32  `json:"m"`
	Label string `json:"label,omitempty"`
}

type Window struct {
	Name    string `json:"name"`
	Entries int    `json:"entries"`
}

// Campaign is a pending run of a rule: a sequence's stage, a calendar's
// next date, a silence watch.
type Campaign struct {
	Rule       string      `json:"rule_id"`
	Version    int32       `json:"rule_version"`
	Key        string      `json:"key,omitempty"`
	Occurrence string      `json:"occurrence,omitempty"`
	Stage      int32       `json:"pending_stage"`
	StartedAt  time.Time   `json:"started_at,omitzero"`
	Due        []time.Time `json:"stage_due,omitempty"`
}

type Mark struct {
	Rule    string    `json:"rule_id"`
	Key     string    `json:"key,omitempty"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires,omitzero"`
}

type Contact struct {
	At      time.Time `json:"at"`
	Channel string    `json:"channel"`
	Rule    string    `json:"rule_id"`
}

type TypeSeen struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
}

// Timer is a pending durable timer; Deferred is set for a trigger the
// contact policy deferred (quiet hours), which the timer releases.
type Timer struct {
	ID         string    `json:"id"`
	Rule       string    `json:"rule_id"`
	Stage      int32     `json:"stage"`
	Due        time.Time `json:"due"`
	Occurrence string    `json:"occurrence,omitempty"`
	Deferred   *Deferred `json:"deferred,omitempty"`
}

type Deferred struct {
	TriggerID string    `json:"trigger_id"`
	Rule      string    `json:"rule_id"`
	Version   int32     `json:"rule_version"`
	Stage     int32     `json:"stage"`
	Channel   string    `json:"channel"`
	DueAt     time.Time `json:"due_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Decision is one entry of the audit trail.
type Decision struct {
	At         time.Time `json:"at"`       // event time of the decision
	Recorded   time.Time `json:"recorded"` // processing time
	Action     string    `json:"action"`   // fired, suppressed, deferred, late_event
	Rule       string    `json:"rule_id,omitempty"`
	Version    int32     `json:"rule_version,omitempty"`
	Stage      int32     `json:"stage,omitempty"`
	Channel    string    `json:"channel,omitempty"`
	TriggerID  string    `json:"trigger_id,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Policy     string    `json:"policy,omitempty"` // late_event: the input topic
	DeferredTo time.Time `json:"deferred_to,omitzero"`
	// Event is a late event's ID: it arrived after the watermark had
	// passed its time, so timers it should have preceded had fired.
	Event string `json:"event_id,omitempty"`
}

// ExplainView is the answer to GET /customers/{id}/explain: the last
// decisions, newest first, and the deferred triggers still waiting.
type ExplainView struct {
	CustomerID string     `json:"customer_id"`
	Partition  int32      `json:"partition"`
	Instance   string     `json:"instance"`
	Found      bool       `json:"found"`
	Decisions  []Decision `json:"decisions"`
	Waiting    []Timer    `json:"waiting,omitempty"` // deferred triggers not released yet
}

func money(m schemas.Money) Money { return Money{Minor: m.Minor, Currency: m.Currency} }

func customerView(cs *state.CustomerState, found bool) CustomerView {
	c := &cs.Customer
	v := CustomerView{
		CustomerID: string(c.ID), Found: found,
		FirstSeen: c.FirstSeen, LastSeen: c.LastSeen, Events: c.Events, Purchases: c.Purchases,
		LastPurchaseAt: c.LastPurchaseAt, Unanswered: c.Unanswered, Dedupe: len(c.Recent),
		Segment: Segment{R: c.RFM.R, F: c.RFM.F, M: c.RFM.M, Label: c.RFM.Segment},
	}
	for _, m := range c.Spend {
		v.Spend = append(v.Spend, money(m))
	}
	p := &c.Profile
	v.Profile = Profile{Birthday: p.Birthday.String(), SignupDate: p.SignupDate.String(), ContractEnd: p.ContractEnd.String(),
		TimeZone: p.TimeZone, Country: p.Country, UpdatedAt: c.ProfileUpdatedAt}
	if len(p.OptIns) > 0 {
		v.Profile.OptIns = map[string]bool{}
		for ch, on := range p.OptIns {
			v.Profile.OptIns[string(ch)] = on
		}
	}
	v.Cart = Cart{UpdatedAt: c.Cart.UpdatedAt, LastEvent: c.Cart.LastEvent}
	for _, it := range c.Cart.Items {
		v.Cart.Items = append(v.Cart.Items, Item{ProductID: it.ProductID, Quantity: it.Quantity, UnitPrice: money(it.UnitPrice)})
	}
	if len(c.Cart.Items) > 0 {
		m := money(c.Cart.Value())
		v.Cart.Value = &m
	}
	for _, a := range c.Aggregates {
		v.Windows = append(v.Windows, Window{Name: a.Name, Entries: len(a.Entries)})
	}
	for _, r := range c.Runs {
		v.Campaigns = append(v.Campaigns, Campaign{Rule: string(r.Rule), Version: r.Version, Key: r.Key, Occurrence: r.Occurrence,
			Stage: r.Stage, StartedAt: r.StartedAt, Due: r.Due})
	}
	for _, m := range c.Marks {
		v.Marks = append(v.Marks, Mark{Rule: string(m.Rule), Key: m.Key, At: m.At, Expires: m.Expires})
	}
	for _, ct := range c.Contacts {
		v.Contacts = append(v.Contacts, Contact{At: ct.At, Channel: string(ct.Channel), Rule: string(ct.Rule)})
	}
	for _, s := range c.Seen {
		v.LastSeenByType = append(v.LastSeenByType, TypeSeen{Type: string(s.Type), At: s.At})
	}
	v.Timers = timersView(cs.Timers, false)
	for i := range c.Decisions {
		v.Decisions = append(v.Decisions, decisionView(&c.Decisions[i]))
	}
	return v
}

func timersView(ts []schemas.Timer, deferredOnly bool) []Timer {
	var out []Timer
	for i := range ts {
		t := &ts[i]
		if deferredOnly && t.Deferred == nil {
			continue
		}
		tv := Timer{ID: t.ID, Rule: string(t.Rule), Stage: t.Stage, Due: t.Due, Occurrence: t.Occurrence}
		if d := t.Deferred; d != nil {
			tv.Deferred = &Deferred{TriggerID: d.ID, Rule: string(d.Rule), Version: d.RuleVersion, Stage: d.Stage,
				Channel: string(d.Channel), DueAt: d.DueAt, ExpiresAt: d.ExpiresAt}
		}
		out = append(out, tv)
	}
	return out
}

func decisionView(d *schemas.Decision) Decision {
	return Decision{At: d.At, Recorded: d.Recorded, Action: string(d.Action), Rule: string(d.Rule), Version: d.RuleVersion,
		Stage: d.Stage, Channel: string(d.Channel), TriggerID: d.TriggerID, Reason: d.Reason, Policy: d.Policy, DeferredTo: d.DeferredTo,
		Event: d.Event}
}

func explainView(cs *state.CustomerState, found bool) ExplainView {
	c := &cs.Customer
	v := ExplainView{CustomerID: string(c.ID), Found: found, Decisions: []Decision{}}
	for i := range c.Decisions {
		v.Decisions = append(v.Decisions, decisionView(&c.Decisions[i]))
	}
	slices.Reverse(v.Decisions)
	v.Waiting = timersView(cs.Timers, true)
	return v
}
