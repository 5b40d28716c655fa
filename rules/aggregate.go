package rules

import (
	"time"

	"cel.dev/cel-go/cel"

	"github.com/triggerd/triggerd/schemas"
)

// aggKind is what an aggregate computes over its window.
type aggKind uint8

const (
	aggCount    aggKind = iota // entries in the window
	aggSum                     // sum of the entries' values
	aggDistinct                // distinct keys in the window
	aggBy                      // entries whose key equals the current event's key
)

// aggregate is a sliding window declared in the rules file. Its entries live
// in the customer record (schemas.Aggregate), pruned by the window and capped
// at max entries, so its memory is bounded by its size, not by the
// customer's history.
type aggregate struct {
	name   string
	on     []schemas.EventType
	where  cel.Program // nil: every event of the types
	window time.Duration
	max    int
	kind   aggKind
	expr   cel.Program // sum: int value; distinct, by: string key
	label  string      // "aggregate NAME", for error messages
}

// find returns the customer's entries of aggregate a, or nil.
func findAgg(c *schemas.Customer, name string) *schemas.Aggregate {
	for i := range c.Aggregates {
		if c.Aggregates[i].Name == name {
			return &c.Aggregates[i]
		}
	}
	return nil
}

// update adds the event to aggregate i if it matches, prunes and caps.
func (s *evalState) updateAgg(i int) {
	a := s.set.aggs[i]
	if a.where != nil && !s.cond(a.where, "", a.label) {
		return
	}
	e := schemas.AggEntry{At: s.ev.Time}
	switch a.kind {
	case aggSum:
		v, ok := s.evalInt(a.expr, "", a.label)
		if !ok {
			return
		}
		e.Value = v
	case aggDistinct, aggBy:
		k, ok := s.evalString(a.expr, "", a.label)
		if !ok {
			return
		}
		e.Key = k
		s.aggKey[i], s.aggKeyOK[i] = k, true
	}
	c := s.c
	ag := findAgg(c, a.name)
	if ag == nil {
		c.Aggregates = grow(c.Aggregates)
		ag = &c.Aggregates[len(c.Aggregates)-1]
		ag.Name, ag.Entries = a.name, ag.Entries[:0]
	}
	// Keep entries in time order: a late event goes before later ones.
	j := len(ag.Entries)
	for j > 0 && ag.Entries[j-1].At.After(e.At) {
		j--
	}
	ag.Entries = append(ag.Entries, schemas.AggEntry{})
	copy(ag.Entries[j+1:], ag.Entries[j:])
	ag.Entries[j] = e
	// Prune what left the window (relative to the newest entry) and cap.
	newest := ag.Entries[len(ag.Entries)-1].At
	drop := 0
	for drop < len(ag.Entries) && !ag.Entries[drop].At.After(newest.Add(-a.window)) {
		drop++
	}
	drop = max(drop, len(ag.Entries)-a.max)
	if drop > 0 {
		n := copy(ag.Entries, ag.Entries[drop:])
		clear(ag.Entries[n:])
		ag.Entries = ag.Entries[:n]
	}
}

// aggValue computes aggregate i over (now - window, now].
func (s *evalState) aggValue(i int) int64 {
	a := s.set.aggs[i]
	ag := findAgg(s.c, a.name)
	if ag == nil {
		return 0
	}
	from := s.now.Add(-a.window)
	var key string
	if a.kind == aggBy {
		if s.aggKeyOK[i] {
			key = s.aggKey[i]
		} else {
			k, ok := s.evalString(a.expr, "", a.label)
			if !ok {
				return 0
			}
			key = k
			s.aggKey[i], s.aggKeyOK[i] = k, true
		}
	}
	var n int64
	for j := range ag.Entries {
		e := &ag.Entries[j]
		if !e.At.After(from) || e.At.After(s.now) {
			continue
		}
		switch a.kind {
		case aggCount:
			n++
		case aggSum:
			n += e.Value
		case aggBy:
			if e.Key == key {
				n++
			}
		case aggDistinct:
			// Count a key at its first occurrence in the window: windows
			// are small (max entries), so quadratic is cheaper than a map.
			first := true
			for k := range j {
				p := &ag.Entries[k]
				if p.Key == e.Key && p.At.After(from) && !p.At.After(s.now) {
					first = false
					break
				}
			}
			if first {
				n++
			}
		}
	}
	return n
}

// grow extends s by one slot, reusing the slot's old value when capacity
// allows (its inner slices keep their capacity).
func grow[T any](s []T) []T {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	var zero T
	return append(s, zero)
}
