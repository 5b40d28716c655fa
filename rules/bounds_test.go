package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// TestRecordStaysBounded: a customer who places far more orders than a
// rule keeps runs or marks for (a bot, a reseller) must not grow a record
// without bound: the broker refuses a record past its size limit. The
// oldest runs end (their pending stages cancelled) and the oldest marks
// give way.
func TestRecordStaysBounded(t *testing.T) {
	s, err := Parse("bounds.yaml", []byte(`rules:
  - id: tips
    version: 1
    family: transactional
    channel: email
    sequence:
      start: {on: [purchase], key: event.order_id, once_per: {period: 90d}}
      stages: [{delay: 2d}]
`))
	if err != nil {
		t.Fatal(err)
	}
	c := &schemas.Customer{ID: "bot"}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var cancelled []string
	const orders = 200
	for i := range orders {
		ev := schemas.Event{Source: schemas.SourceTransaction, ID: fmt.Sprintf("e%d", i), Customer: c.ID,
			Type: schemas.Purchase, Time: at.Add(time.Duration(i) * time.Second), OrderID: fmt.Sprintf("o%d", i),
			Amount: schemas.Money{Minor: 100, Currency: "EUR"}}
		var a Actions
		s.OnEvent(c, &ev, &a)
		for _, ref := range a.Cancel {
			cancelled = append(cancelled, ref.ID)
		}
	}
	if len(c.Runs) != maxRunsPerRule {
		t.Errorf("%d runs kept after %d orders, want the bound %d", len(c.Runs), orders, maxRunsPerRule)
	}
	if len(c.Marks) != maxMarksPerRule {
		t.Errorf("%d marks kept after %d orders, want the bound %d", len(c.Marks), orders, maxMarksPerRule)
	}
	// The runs kept are the newest; the evicted ones had their timers
	// cancelled, oldest first.
	if got, want := c.Runs[0].Key, fmt.Sprintf("o%d", orders-maxRunsPerRule); got != want {
		t.Errorf("oldest run kept is %s, want %s", got, want)
	}
	if len(cancelled) != orders-maxRunsPerRule || cancelled[0] != "tips/o0" {
		t.Errorf("cancelled %d timers starting %v, want %d starting tips/o0", len(cancelled), cancelled[:min(3, len(cancelled))], orders-maxRunsPerRule)
	}
}
