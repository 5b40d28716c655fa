package rules

import (
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"

	"github.com/triggerd/triggerd/schemas"
)

// segments scores customers by recency, frequency and monetary value (RFM,
// 1 to 5 each) from their purchases, and labels them with the first segment
// whose condition holds. Customers without a purchase are not scored (scores
// 0, no segment).
type segments struct {
	currency  string
	recency   [4]int64 // days since the last purchase: <= [0] scores 5 ... > [3] scores 1
	frequency [4]int64 // purchases: >= [3] scores 5 ... < [0] scores 1
	monetary  [4]int64 // lifetime spend in currency, minor units, like frequency
	labels    []segmentLabel
}

type segmentLabel struct {
	name string
	when cel.Program
}

// SegmentChanged is the type of the synthetic event the engine evaluates
// when a customer's segment changes. Its properties hold "from" and "to".
const SegmentChanged schemas.EventType = "segment_changed"

func (sg *segments) score(c *schemas.Customer, now time.Time) schemas.RFM {
	if c.Purchases == 0 || c.LastPurchaseAt.IsZero() {
		return schemas.RFM{}
	}
	days := int64(now.Sub(c.LastPurchaseAt) / (24 * time.Hour))
	var r schemas.RFM
	r.R = 1
	for i := 3; i >= 0; i-- {
		if days <= sg.recency[i] {
			r.R = int32(5 - i)
		}
	}
	r.F = ascending(sg.frequency, c.Purchases)
	var spend int64
	for _, m := range c.Spend {
		if m.Currency == sg.currency {
			spend = m.Minor
		}
	}
	r.M = ascending(sg.monetary, spend)
	return r
}

// ascending scores v against ascending thresholds: 1 below t[0], 5 from t[3].
func ascending(t [4]int64, v int64) int32 {
	s := int32(1)
	for i := range t {
		if v >= t[i] {
			s = int32(i + 2)
		}
	}
	return s
}

// rfmActivation answers r, f and m.
type rfmActivation struct{ r, f, m int64 }

func (a *rfmActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "r":
		return types.Int(a.r), true
	case "f":
		return types.Int(a.f), true
	case "m":
		return types.Int(a.m), true
	}
	return nil, false
}

func (a *rfmActivation) Parent() interpreter.Activation { return nil }

// label returns the first label whose condition holds, or "".
func (sg *segments) label(r schemas.RFM) string {
	act := rfmActivation{int64(r.R), int64(r.F), int64(r.M)}
	for _, l := range sg.labels {
		v, _, err := l.when.Eval(&act)
		if err == nil && v == types.True {
			return l.name
		}
	}
	return ""
}

// update rescores c at now. It reports whether the segment changed, and the
// previous one.
func (sg *segments) update(c *schemas.Customer, now time.Time) (string, bool) {
	r := sg.score(c, now)
	if r.R == c.RFM.R && r.F == c.RFM.F && r.M == c.RFM.M {
		return "", false // labels depend on the scores only
	}
	old := c.RFM.Segment
	r.Segment = ""
	if r.R != 0 {
		r.Segment = sg.label(r)
	}
	c.RFM = r
	return old, old != r.Segment
}
