package rules

import (
	"strings"
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

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CartAbandonment.Stage1Delay = 0
	cfg.CartAbandonment.Stage2Delay = -1
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "stage1_delay") || !strings.Contains(err.Error(), "stage2_delay") {
		t.Fatalf("Validate() = %v, want both problems", err)
	}
}
