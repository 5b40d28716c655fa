package system

import (
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestExplainCustomers is a diagnosis tool, not a check: after a failed
// system run (kept with TEST_KEEP_DIR), it prints, for every customer whose ID
// starts with DEBUG_PREFIX, the model's events and expected triggers next to
// the triggers found on DEBUG_TOPIC. DEBUG_START is the workload's start
// (RFC 3339). Without DEBUG_TOPIC it skips.
func TestExplainCustomers(t *testing.T) {
	topic := os.Getenv("DEBUG_TOPIC")
	prefix := os.Getenv("DEBUG_PREFIX")
	if topic == "" {
		t.Skip("diagnosis tool: set DEBUG_TOPIC, DEBUG_PREFIX and DEBUG_START to explain a failed run")
	}
	c := harness.NewCluster(t)
	got := harness.NewTriggerReader(t, c, topic, schemas.FormatJSON, nil).Read(1<<30, 3*time.Second, 20*time.Second)
	byCust := map[string][]harness.FiredTrigger{}
	for _, tr := range got {
		byCust[tr.Customer] = append(byCust[tr.Customer], tr)
	}
	start, _ := time.Parse(time.RFC3339, os.Getenv("DEBUG_START"))
	spec := workloadSpec{seed: 20261122, events: 200_000, customers: 10_000, start: start, spacing: 5 * time.Second, heartbeatEvery: 500}
	all := modelEventsOnly(spec)
	mc := modelConfig{version: 1, stage1: time.Hour, stage2: 24 * time.Hour}
	for cust, evs := range all {
		if !strings.HasPrefix(string(cust), prefix) {
			continue
		}
		want := expectTriggers(mc, map[schemas.CustomerID][]modelEvent{cust: evs})
		have := map[string]bool{}
		for _, tr := range byCust[string(cust)] {
			have[tr.ID] = true
		}
		bad := len(have) != len(want)
		for id := range want {
			if !have[id] {
				bad = true
			}
		}
		if !bad {
			continue
		}
		t.Logf("=== %s", cust)
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
		for _, e := range evs {
			t.Logf("EV %s %s %s prod=%s qty=%d", e.at.Format(time.RFC3339), e.id, e.typ, e.prod, e.qty)
		}
		for id, w := range want {
			t.Logf("WANT %s %s got=%v", w, id, have[id])
		}
		for _, tr := range byCust[string(cust)] {
			if _, ok := want[tr.ID]; !ok {
				t.Logf("UNEXPECTED stage=%d due=%s", tr.Stage, tr.Due.Format(time.RFC3339))
			}
		}
	}
}
