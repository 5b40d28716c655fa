package bench

import (
	"fmt"
	"strings"
	"sync"
)

// The exactly-once cycle's latency by phase, and the bytes the state
// writes per event, for the table: logCycles records them for each of our
// runs (breakdownOf), printTable prints them under the table
// (breakdownLines). The phases are the processor's own histogram,
// triggerd_cycle_phase_seconds: poll (the poll that brought records, its
// wait included), process (rules and state), flush (the produced records'
// acknowledgements), end (the transaction's offset commit and end) and
// apply (the Pebble batches). An event's latency is at most the rest of
// the cycle it arrives in plus the next one, so the phase whose p99 is
// largest is the one that keeps p99 event → trigger from the goal.

var breakdowns struct {
	sync.Mutex
	lines []string
}

// breakdownOf records the phase quantiles and the bytes per event of run
// name between two scrapes.
func breakdownOf(cluster, name string, events int64, before, after metricSet) {
	d := func(metric string) float64 { return after.sum(metric) - before.sum(metric) }
	var sb strings.Builder
	fmt.Fprintf(&sb, "  %s %s: cycle phases p50/p99 (bucket upper bounds, s):", cluster, name)
	for _, ph := range []string{"poll", "process", "flush", "end", "apply"} {
		b := after.diff(before, `triggerd_cycle_phase_seconds_bucket{phase="`+ph+`",`)
		if len(b) == 0 {
			continue
		}
		fmt.Fprintf(&sb, " %s %s/%s", ph, strings.TrimPrefix(histQuantile(b, 0.5), "<="), strings.TrimPrefix(histQuantile(b, 0.99), "<="))
	}
	cycle := after.diff(before, "triggerd_cycle_seconds_bucket")
	fmt.Fprintf(&sb, "; cycle %s/%s\n", strings.TrimPrefix(histQuantile(cycle, 0.5), "<="), strings.TrimPrefix(histQuantile(cycle, 0.99), "<="))
	ev := float64(max(events, 1))
	wal := d("triggerd_store_wal_bytes_total")
	flushed, compacted := d("triggerd_store_flushed_bytes_total"), d("triggerd_store_compacted_bytes_total")
	fmt.Fprintf(&sb, "  %s %s: bytes/event: changelog customer %.0f, all %.0f; Pebble WAL %.0f, flushed %.0f, compacted %.0f (write amplification %.1f)\n",
		cluster, name, d(`triggerd_changelog_bytes_total{kind="customer"}`)/ev, d("triggerd_changelog_bytes_total")/ev,
		wal/ev, flushed/ev, compacted/ev, (flushed+compacted)/max(wal, 1))
	breakdowns.Lock()
	breakdowns.lines = append(breakdowns.lines, sb.String())
	breakdowns.Unlock()
	logf("%s", strings.TrimSpace(sb.String()))
}

// breakdownLines returns what breakdownOf recorded, and forgets it.
func breakdownLines() string {
	breakdowns.Lock()
	defer breakdowns.Unlock()
	s := strings.Join(breakdowns.lines, "")
	breakdowns.lines = nil
	return s
}
