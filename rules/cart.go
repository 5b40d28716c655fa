package rules

import (
	"strconv"

	"github.com/triggerd/triggerd/schemas"
)

const (
	cartRule    schemas.RuleID = "cart_abandoned"
	cartTimerID                = "cart_abandoned"
	cartKind                   = "cart_abandoned"
)

// cartOnEvent keeps one pending cart timer per customer: a cart change
// restarts the clock (the timer moves), an emptied cart or a purchase
// cancels it.
func (s *Set) cartOnEvent(c *schemas.Customer, ev *schemas.Event, cartChanged bool, a *Actions) {
	if ev.Type == schemas.Purchase {
		a.Cancel = append(a.Cancel, TimerRef{Customer: c.ID, ID: cartTimerID})
		return
	}
	if !cartChanged {
		return
	}
	if len(c.Cart.Items) == 0 {
		a.Cancel = append(a.Cancel, TimerRef{Customer: c.ID, ID: cartTimerID})
		return
	}
	a.Schedule = append(a.Schedule, schemas.Timer{
		Customer:   c.ID,
		ID:         cartTimerID,
		Due:        ev.Time.Add(s.cfg.CartAbandonment.Stage1Delay),
		Rule:       cartRule,
		Stage:      1,
		Occurrence: ev.ID,
		CausedBy:   []string{ev.ID},
	})
}

// cartOnTimer fires a stage if the exit criteria still hold: the cart is not
// empty and has not changed since the change that started this run (a change
// would have moved the timer; checking again guards against a timer that
// outlived its cause). Stage 1 schedules stage 2, due Stage2Delay after stage
// 1 was due.
func (s *Set) cartOnTimer(c *schemas.Customer, t *schemas.Timer, a *Actions) {
	cfg := &s.cfg.CartAbandonment
	if len(c.Cart.Items) == 0 || c.Cart.LastEvent != t.Occurrence {
		return
	}
	ch := cfg.Stage1Channel
	if t.Stage == 2 {
		ch = cfg.Stage2Channel
	}
	value := c.Cart.Value()
	tr := schemas.Trigger{
		ID:          TriggerID(c.ID, cartRule, cfg.Version, t.Stage, t.Occurrence),
		Rule:        cartRule,
		RuleVersion: cfg.Version,
		Kind:        cartKind,
		Stage:       t.Stage,
		Channel:     ch,
		Priority:    cfg.Priority,
		Customer:    c.ID,
		DueAt:       t.Due,
		ExpiresAt:   t.Due.Add(cfg.Expiry),
		CausedBy:    t.CausedBy,
		Items:       append([]schemas.Item(nil), c.Cart.Items...),
		Value:       value,
		Attributes: map[string]string{
			"cart_items": strconv.Itoa(len(c.Cart.Items)),
			"cart_value": value.String(),
		},
	}
	a.Emit = append(a.Emit, tr)
	if t.Stage == 1 {
		next := *t
		next.Stage = 2
		next.Due = t.Due.Add(cfg.Stage2Delay)
		a.Schedule = append(a.Schedule, next)
	}
}
