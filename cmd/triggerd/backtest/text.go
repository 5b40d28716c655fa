package backtest

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"
)

// WriteText writes the report's summary for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("backtest %s .. %s (event time, UTC)\n", r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339))
	p("baseline:  %s\ncandidate: %s\n\n", r.Baseline.Rules, r.Candidate.Rules)
	p("rule\tbaseline\tcandidate\tchange\n")
	for _, id := range r.Rules {
		b, c := r.Baseline.ByRule[id], r.Candidate.ByRule[id]
		p("%s\t%d\t%d\t%s\n", id, b, c, change(b, c))
	}
	p("total triggers\t%d\t%d\t%s\n", r.Baseline.Triggers, r.Candidate.Triggers, change(r.Baseline.Triggers, r.Candidate.Triggers))
	p("suppressed\t%d\t%d\t%s\n", r.Baseline.Suppressed, r.Candidate.Suppressed, change(r.Baseline.Suppressed, r.Candidate.Suppressed))
	p("deferred\t%d\t%d\t%s\n", r.Baseline.Deferred, r.Candidate.Deferred, change(r.Baseline.Deferred, r.Candidate.Deferred))
	p("\nsuppressions and deferrals\tbaseline\tcandidate\t\n")
	if len(policyKeys(r)) == 0 {
		p("(none)\t\t\t\n")
	}
	for _, k := range policyKeys(r) {
		p("%s\t%d\t%d\t\n", k.label(), count(r.Baseline.Suppressions, k), count(r.Candidate.Suppressions, k))
	}
	d := r.Differences
	p("\n%d customers differ: %d triggers only in the baseline, %d only in the candidate, %d moved\n",
		d.Customers, d.OnlyBaseline, d.OnlyCandidate, d.Moved)
	for _, e := range d.Examples {
		p("  %s %s stage %d %s (%s): %s\n", e.Customer, e.Rule, e.Stage, e.Channel, e.Change, e.Explanation)
	}
	rp := r.Replay
	p("\ncost: %d events replayed (state rebuilt from %s), copy %.1fs, baseline %.1fs, candidate %.1fs; total %.1fs wall, %.1fs CPU, %.0f events/s per side\n",
		rp.Total.Events, rp.Earliest.UTC().Format(time.RFC3339), rp.Copy.WallSeconds, r.Baseline.Cost.WallSeconds, r.Candidate.Cost.WallSeconds,
		rp.Total.WallSeconds, rp.Total.CPUSeconds, (r.Baseline.Cost.EventsPerSecond+r.Candidate.Cost.EventsPerSecond)/2)
	p("approximate: %s\n", r.Approximate)
	return tw.Flush()
}

func change(b, c int) string {
	switch {
	case b == c:
		return "="
	case b == 0:
		return fmt.Sprintf("+%d (new)", c)
	}
	return fmt.Sprintf("%+d (%+.0f%%)", c-b, 100*float64(c-b)/float64(b))
}

func (k PolicyCount) label() string { return k.Action + " " + k.Reason + " (" + k.Policy + ")" }

// policyKeys lists the (action, reason, policy) of either side, by label.
func policyKeys(r *Report) []PolicyCount {
	seen := map[PolicyCount]bool{}
	var keys []PolicyCount
	for _, s := range []Side{r.Baseline, r.Candidate} {
		for _, x := range s.Suppressions {
			k := PolicyCount{Action: x.Action, Reason: x.Reason, Policy: x.Policy}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].label() < keys[j].label() })
	return keys
}

func count(xs []PolicyCount, k PolicyCount) int {
	for _, x := range xs {
		if x.Action == k.Action && x.Reason == k.Reason && x.Policy == k.Policy {
			return x.Count
		}
	}
	return 0
}
