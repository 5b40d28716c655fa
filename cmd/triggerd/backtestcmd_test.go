package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestBacktestCommand runs "triggerd backtest" on a cluster with carts:
// the candidate (a longer delay) moves every email; the summary, the JSON
// and the HTML report say so. Usage errors exit 2.
func TestBacktestCommand(t *testing.T) {
	for _, args := range [][]string{
		{"backtest"},
		{"backtest", "--rules", "x.yaml"},
		{"backtest", "--rules", "x.yaml", "--from", "yesterday"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 || !strings.Contains(stderr, "Usage:") {
			t.Errorf("triggerd %s: exit %d, stderr %q; want a usage error", strings.Join(args, " "), code, stderr)
		}
	}
	if code, stdout, _ := runCLI(t, "help", "backtest"); code != 0 || !strings.Contains(stdout, "--baseline FILE") {
		t.Errorf("help backtest: exit %d, %q", code, stdout)
	}

	c := harness.NewCluster(t)
	cfg := c.Topics(t, 2)
	p := harness.NewProducer(t, c, cfg, nil)
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-5 * 24 * time.Hour)
	const carts = 12
	for i := 0; i < carts; i++ {
		p.Send(2, schemas.Event{Source: schemas.SourceClickstream, ID: fmt.Sprintf("a%d", i), Customer: schemas.CustomerID(fmt.Sprintf("c%d", i)),
			Type: schemas.AddToCart, Time: day.Add(time.Duration(i) * time.Hour), ProductID: "p1", Quantity: 1,
			Price: schemas.Money{Minor: 500, Currency: "EUR"}})
	}
	dir := t.TempDir()
	rulesFile := func(name string, delay string) string {
		path := filepath.Join(dir, name)
		src := `defaults: {time_zone: UTC, channel: email}
rules:
  - id: cart_abandoned
    version: 1
    family: behavioral
    sequence:
      start: {on: [add_to_cart], when: "customer.cart.last_event == event.id"}
      stages: [{delay: ` + delay + `, channel: email}]
`
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	base, cand := rulesFile("current.yaml", "1h"), rulesFile("candidate.yaml", "3h")
	config := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf("kafka:\n  brokers: [%s]\n  topics: {clickstream: %s, transactions: %s, profiles: %s, triggers: %s, dead_letter: %s, changelog: %s, suppressions: %s}\n  lateness: 0s\n",
		strings.Join(cfg.Brokers, ", "), cfg.Topics.Clickstream, cfg.Topics.Transactions, cfg.Topics.Profiles, cfg.Topics.Triggers,
		cfg.Topics.DeadLetter, cfg.Topics.Changelog, cfg.Topics.Suppressions)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	jsonOut, htmlOut := filepath.Join(dir, "out.json"), filepath.Join(dir, "report.html")
	code, stdout, stderr := runCLI(t, "backtest", "--config", config, "--rules", cand, "--baseline", base,
		"--from", day.Format(time.DateOnly), "--to", day.Add(2*24*time.Hour).Format(time.RFC3339), "--json", jsonOut, "--html", htmlOut)
	if code != 0 {
		t.Fatalf("backtest: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	want := fmt.Sprintf("cart_abandoned  %d", carts)
	if !strings.Contains(stdout, want) || !strings.Contains(stdout, fmt.Sprintf("%d moved", carts)) {
		t.Errorf("summary lacks %q or %d moved:\n%s", want, carts, stdout)
	}
	var rep struct {
		Baseline    struct{ Triggers int }
		Differences struct{ Moved, Customers int }
	}
	data, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Baseline.Triggers != carts || rep.Differences.Moved != carts || rep.Differences.Customers != carts {
		t.Errorf("JSON: %+v, want %d triggers, moved and customers", rep, carts)
	}
	page, err := os.ReadFile(htmlOut)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `<svg class="chart"`) {
		t.Error("the HTML report has no chart")
	}
	t.Logf("summary:\n%s", stdout)
}
