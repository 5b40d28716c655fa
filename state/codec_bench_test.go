package state

import (
	"strconv"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// hotCustomer is a busy customer's record, the kind that dominates what the
// store writes: dozens of runs, marks, window entries and decisions.
func hotCustomer() *schemas.Customer {
	c := fullCustomer()
	base := c.LastSeen
	for i := range 32 {
		at := base.Add(-time.Duration(i) * time.Hour)
		id := "evt-" + strconv.Itoa(i)
		c.Runs = append(c.Runs, schemas.Run{Rule: "browse_abandon", Key: id, Occurrence: id, Stage: 1,
			StartedAt: at, Version: 2, Due: []time.Time{at.Add(time.Hour), at.Add(24 * time.Hour)}, CausedBy: id})
		c.Decisions = append(c.Decisions, schemas.Decision{At: at, Recorded: at.Add(time.Millisecond),
			Action: schemas.DecisionFired, Rule: "browse_abandon", RuleVersion: 2, Stage: 1,
			Channel: schemas.ChannelEmail, TriggerID: "0123456789abcdef0123456789abcdef", Reason: "-", Policy: "-"})
		c.Recent = append(c.Recent, schemas.SeenEvent{Key: schemas.EventKey(id), At: at})
	}
	for i := range 64 {
		c.Marks = append(c.Marks, schemas.Mark{Rule: "dedupe_view", Key: "product-" + strconv.Itoa(i),
			At: base.Add(-time.Duration(i) * time.Minute), Expires: base.Add(time.Duration(i) * time.Minute)})
		c.Aggregates[0].Entries = append(c.Aggregates[0].Entries, schemas.AggEntry{At: base.Add(-time.Duration(i) * time.Second), Value: int64(i), Key: "DE"})
	}
	return c
}

func benchEncode(b *testing.B, c *schemas.Customer) {
	buf := appendCustomer(nil, c)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendCustomer(buf[:0], c)
	}
}

func benchDecode(b *testing.B, c *schemas.Customer) {
	buf := appendCustomer(nil, c)
	into := &schemas.Customer{}
	var nm names
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeCustomerWith(buf, into, &nm); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeCustomer(b *testing.B) {
	b.Run("full", func(b *testing.B) { benchEncode(b, fullCustomer()) })
	b.Run("hot", func(b *testing.B) { benchEncode(b, hotCustomer()) })
}

func BenchmarkDecodeCustomer(b *testing.B) {
	b.Run("full", func(b *testing.B) { benchDecode(b, fullCustomer()) })
	b.Run("hot", func(b *testing.B) { benchDecode(b, hotCustomer()) })
}
