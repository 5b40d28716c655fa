package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/triggerd/triggerd/schemas"
)

// Set is a validated, ready-to-evaluate set of rules. It is immutable and
// safe for concurrent use by every partition worker.
type Set struct {
	cfg Config
}

// New validates cfg and builds the rule set.
func New(cfg Config) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Set{cfg: cfg}, nil
}

// OnEvent updates c for ev and appends to a what the rules ask for. ev has
// been validated by the decoder (customer, ID, type and time are set).
func (s *Set) OnEvent(c *schemas.Customer, ev *schemas.Event, a *Actions) {
	cartChanged := applyEvent(c, ev)
	if s.cfg.CartAbandonment.Enabled {
		s.cartOnEvent(c, ev, cartChanged, a)
	}
}

// OnTimer evaluates a due timer t of customer c and appends to a what the
// rules ask for. The timer has already been removed from the pending set.
// Exit criteria are checked again here, against the state at fire time.
func (s *Set) OnTimer(c *schemas.Customer, t *schemas.Timer, a *Actions) {
	switch t.Rule {
	case cartRule:
		if s.cfg.CartAbandonment.Enabled {
			s.cartOnTimer(c, t, a)
		}
	}
	// A timer of a rule that no longer exists fires into nothing.
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
