package processor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
)

// The audit trail keeps the last MaxDecisions decisions, oldest first, with
// the policy's reason and name, and none of the trigger's attributes.
func TestRecordDecisions(t *testing.T) {
	c := &schemas.Customer{ID: "c1"}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var a rules.Actions
	for i := range schemas.MaxDecisions + 5 {
		a.Reset()
		a.Emit = append(a.Emit, schemas.Trigger{ID: fmt.Sprint("t", i), Rule: "promo", RuleVersion: 3, Stage: 1,
			Channel: schemas.ChannelEmail, DueAt: now, Attributes: map[string]string{"name": "secret-name"}})
		if i == schemas.MaxDecisions+4 {
			a.Suppress = append(a.Suppress, schemas.Suppression{Action: schemas.ActionDeferred, Reason: "quiet_hours",
				Policy: "quiet_hours", DecidedAt: now, DeferredTo: now.Add(time.Hour),
				Trigger: schemas.Trigger{ID: "late", Rule: "night", RuleVersion: 2, Attributes: map[string]string{"name": "secret-name"}}})
		}
		recordDecisions(c, &a, now)
	}
	if len(c.Decisions) != schemas.MaxDecisions {
		t.Fatalf("%d decisions kept, want %d", len(c.Decisions), schemas.MaxDecisions)
	}
	if first := c.Decisions[0]; first.TriggerID != "t6" || first.Action != schemas.DecisionFired || first.RuleVersion != 3 {
		t.Fatalf("oldest kept %+v, want t6 (the first 6 dropped)", first)
	}
	last := c.Decisions[len(c.Decisions)-1]
	if last.Action != schemas.DecisionDeferred || last.Rule != "night" || last.Reason != "quiet_hours" ||
		last.Policy != "quiet_hours" || !last.DeferredTo.Equal(now.Add(time.Hour)) || !last.Recorded.Equal(now) {
		t.Fatalf("last decision %+v", last)
	}
	if s := fmt.Sprintf("%+v", c.Decisions); strings.Contains(s, "secret-name") {
		t.Fatal("an attribute value reached the audit trail")
	}
}
