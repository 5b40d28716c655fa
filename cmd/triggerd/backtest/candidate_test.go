package backtest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// cart is one abandoned-or-bought cart of the test's traffic: an
// add_to_cart, and a purchase after buyAfter (0: never).
type cart struct {
	customer string
	added    time.Time
	buyAfter time.Duration
}

// modelSends is the test's own model of the one-stage cart rule under an
// email cap: a cart not bought within delay is due at added+delay; it is
// sent unless the customer already got max emails in the 7 days up to it
// (only sent ones count), else suppressed by the cap. It returns the due
// times sent and suppressed, as "customer@due".
func modelSends(carts []cart, delay time.Duration, max int) (sent, capped map[string]bool) {
	sent, capped = map[string]bool{}, map[string]bool{}
	byCustomer := map[string][]time.Time{}
	for _, c := range carts {
		if c.buyAfter > 0 && c.buyAfter < delay {
			continue
		}
		byCustomer[c.customer] = append(byCustomer[c.customer], c.added.Add(delay))
	}
	for cust, dues := range byCustomer {
		sort.Slice(dues, func(i, j int) bool { return dues[i].Before(dues[j]) })
		var out []time.Time
		for _, due := range dues {
			n := 0
			for _, o := range out {
				if due.Sub(o) < 7*24*time.Hour {
					n++
				}
			}
			k := cust + "@" + due.Format(time.RFC3339)
			if n >= max {
				capped[k] = true
				continue
			}
			out = append(out, due)
			sent[k] = true
		}
	}
	return sent, capped
}

// TestCandidateDifferences backtests a candidate with a longer delay (1h
// -> 2h) and a tighter cap (3 -> 1 email a week) and checks the report
// against the test's own model of both: every trigger sent on each side,
// the cap's suppressions, and the differences counted and explained.
func TestCandidateDifferences(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 3
	cfg := c.Topics(t, parts)
	p := harness.NewProducer(t, c, cfg, nil)
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(-12 * 24 * time.Hour)
	var carts []cart
	for i := 0; i < 30; i++ {
		// One cart each: bought after 90 min (the 1h email went, the 2h
		// one does not), after 30 min (neither), or never (both).
		buy := []time.Duration{90 * time.Minute, 30 * time.Minute, 0}[i%3]
		carts = append(carts, cart{fmt.Sprintf("d-%02d", i), base.Add(24*time.Hour + time.Duration(i)*7*time.Minute), buy})
	}
	for j := 0; j < 8; j++ {
		// Three carts a day apart, never bought: the tighter cap sends
		// only the first.
		for d := 1; d <= 3; d++ {
			carts = append(carts, cart{fmt.Sprintf("m-%02d", j), base.Add(time.Duration(d)*24*time.Hour + 3*time.Hour + time.Duration(j)*time.Minute), 0})
		}
	}
	var evs []schemas.Event
	for i, ct := range carts {
		id := fmt.Sprintf("e%03d", i)
		evs = append(evs, schemas.Event{Source: schemas.SourceClickstream, ID: id + "a", Customer: schemas.CustomerID(ct.customer),
			Type: schemas.AddToCart, Time: ct.added, ProductID: "p1", Quantity: 1, Price: schemas.Money{Minor: 1000, Currency: "EUR"}})
		if ct.buyAfter > 0 {
			evs = append(evs, schemas.Event{Source: schemas.SourceTransaction, ID: id + "p", Customer: schemas.CustomerID(ct.customer),
				Type: schemas.Purchase, Time: ct.added.Add(ct.buyAfter), OrderID: "o-" + id, Amount: schemas.Money{Minor: 1000, Currency: "EUR"}})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	p.Send(parts, evs...)

	baseline := cartRules(t, "current.yaml", time.Hour, 3)
	candidate := cartRules(t, "candidate.yaml", 2*time.Hour, 1)
	from, to := base, base.Add(6*24*time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Source: cfg, Baseline: baseline, Candidate: candidate, From: from, To: to, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}

	bSent, bCapped := modelSends(carts, time.Hour, 3)
	cSent, cCapped := modelSends(carts, 2*time.Hour, 1)
	if len(bCapped) != 0 || len(cCapped) == 0 {
		t.Fatalf("test data: the baseline should cap nothing (%d) and the candidate something (%d)", len(bCapped), len(cCapped))
	}
	checkSide(t, "baseline", rep.Baseline, bSent, bCapped)
	checkSide(t, "candidate", rep.Candidate, cSent, cCapped)

	// A cart the model sends on both sides moved by an hour; one sent by
	// the baseline only is either bought between 1h and 2h or capped.
	moved, onlyB, onlyC := 0, 0, 0
	customers := map[string]bool{}
	for k := range bSent {
		cust, due := splitKey(t, k)
		if cSent[cust+"@"+due.Add(time.Hour).Format(time.RFC3339)] {
			moved++
		} else {
			onlyB++
		}
		customers[cust] = true
	}
	for k := range cSent {
		cust, due := splitKey(t, k)
		if !bSent[cust+"@"+due.Add(-time.Hour).Format(time.RFC3339)] {
			onlyC++
			customers[cust] = true
		}
	}
	d := rep.Differences
	if d.Moved != moved || d.OnlyBaseline != onlyB || d.OnlyCandidate != onlyC || d.Customers != len(customers) {
		t.Errorf("differences: got moved=%d only_baseline=%d only_candidate=%d customers=%d, want %d %d %d %d",
			d.Moved, d.OnlyBaseline, d.OnlyCandidate, d.Customers, moved, onlyB, onlyC, len(customers))
	}
	var capExplained, delayExplained, exitExplained bool
	for _, e := range d.Examples {
		switch {
		case e.Change == "moved" && e.CandidateDue != nil && e.BaselineDue != nil && e.CandidateDue.Sub(*e.BaselineDue) == time.Hour:
			delayExplained = true
		case e.Change == "only_baseline" && strings.Contains(e.Explanation, "reason cap, policy email_7d"):
			capExplained = true
		case e.Change == "only_baseline" && strings.Contains(e.Explanation, "did not fire"):
			exitExplained = true
		}
	}
	if !capExplained || !delayExplained || !exitExplained {
		t.Errorf("examples should explain a moved delay (%v), a cap (%v) and a cart bought in between (%v): %+v",
			delayExplained, capExplained, exitExplained, d.Examples)
	}
	t.Logf("baseline %d triggers, candidate %d triggers and %d capped; moved %d, only baseline %d, only candidate %d",
		rep.Baseline.Triggers, rep.Candidate.Triggers, rep.Candidate.Suppressed, moved, onlyB, onlyC)
}

func splitKey(t *testing.T, k string) (string, time.Time) {
	t.Helper()
	for i := range k {
		if k[i] == '@' {
			due, err := time.Parse(time.RFC3339, k[i+1:])
			if err != nil {
				t.Fatal(err)
			}
			return k[:i], due
		}
	}
	t.Fatalf("bad key %q", k)
	return "", time.Time{}
}

func checkSide(t *testing.T, name string, s Side, sent, capped map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for _, tr := range s.TriggerList {
		got[string(tr.Customer)+"@"+tr.DueAt.UTC().Format(time.RFC3339)] = true
	}
	if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(sent)) {
		t.Errorf("%s triggers:\ngot  %v\nwant %v", name, sortedKeys(got), sortedKeys(sent))
	}
	gotCap := map[string]bool{}
	for _, x := range s.SuppressionList {
		if x.Reason != "cap" || x.Policy != "email_7d" || x.Action != schemas.ActionSuppressed {
			t.Errorf("%s: unexpected suppression %s %s %s", name, x.Action, x.Reason, x.Policy)
		}
		gotCap[string(x.Trigger.Customer)+"@"+x.Trigger.DueAt.UTC().Format(time.RFC3339)] = true
	}
	if fmt.Sprint(sortedKeys(gotCap)) != fmt.Sprint(sortedKeys(capped)) {
		t.Errorf("%s capped:\ngot  %v\nwant %v", name, sortedKeys(gotCap), sortedKeys(capped))
	}
	if s.ByRule["cart_abandoned"] != len(sent) || s.Suppressed != len(capped) {
		t.Errorf("%s counts: by rule %v, suppressed %d; want %d and %d", name, s.ByRule, s.Suppressed, len(sent), len(capped))
	}
}
