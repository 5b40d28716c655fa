package rules

import (
	"testing"
)

func TestTriggerIDDeterministic(t *testing.T) {
	a := TriggerID("c1", "cart_abandoned", 1, 1, "ev1")
	if a != TriggerID("c1", "cart_abandoned", 1, 1, "ev1") {
		t.Fatal("same inputs, different IDs")
	}
	for _, other := range []string{
		TriggerID("c2", "cart_abandoned", 1, 1, "ev1"),
		TriggerID("c1", "cart_abandoned", 2, 1, "ev1"),
		TriggerID("c1", "cart_abandoned", 1, 2, "ev1"),
		TriggerID("c1", "cart_abandoned", 1, 1, "ev2"),
		// Length-prefixed fields: moving a byte between fields changes the ID.
		TriggerID("c1c", "art_abandoned", 1, 1, "ev1"),
	} {
		if other == a {
			t.Errorf("distinct inputs share ID %s", a)
		}
	}
}
