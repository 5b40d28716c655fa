package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// backtestRules is a one-stage cart rule with the given delay.
func backtestRules(delay string) []byte {
	return []byte(`defaults: {time_zone: UTC, channel: email}
rules:
  - id: cart_abandoned
    version: 1
    family: behavioral
    sequence:
      start: {on: [add_to_cart], when: "customer.cart.last_event == event.id"}
      stages: [{delay: ` + delay + `, channel: email}]
`)
}

// TestBacktestCommand runs the triggerd binary's backtest against the
// cluster (on the real broker in make test's second pass) after a live
// processor has run the baseline rules: the baseline's triggers in the
// range are the live ones, the candidate (a longer delay) moves every one,
// and the production cluster is as it was: the same end offsets on every
// topic, the same consumer groups, no topic added.
func TestBacktestCommand(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 2
	cfg := c.Topics(t, parts)
	dir := t.TempDir()
	base, cand := filepath.Join(dir, "current.yaml"), filepath.Join(dir, "candidate.yaml")
	for path, delay := range map[string]string{base: "1h", cand: "3h"} {
		if err := os.WriteFile(path, backtestRules(delay), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := rules.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	proc := harness.RunProcessor(t, cfg, rs, nil)
	p := harness.NewProducer(t, c, cfg, nil)
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-5 * 24 * time.Hour)
	const carts = 12
	for i := 0; i < carts; i++ {
		p.Send(parts, schemas.Event{Source: schemas.SourceClickstream, ID: fmt.Sprintf("a%d", i), Customer: schemas.CustomerID(fmt.Sprintf("c%d", i)),
			Type: schemas.AddToCart, Time: day.Add(time.Duration(i) * time.Hour), ProductID: "p1", Quantity: 1,
			Price: schemas.Money{Minor: 500, Currency: "EUR"}})
	}
	p.Tick(parts, day.Add(2*24*time.Hour))
	harness.WaitEvents(t, proc, carts+3*parts)
	live := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(carts, time.Second, time.Minute)
	if len(live) != carts {
		t.Fatalf("the live processor emitted %d triggers, want %d", len(live), carts)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.Client(t))
	before := productionSnapshot(t, ctx, adm, cfg)

	config := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf("kafka:\n  brokers: [%s]\n  topics: {clickstream: %s, transactions: %s, profiles: %s, triggers: %s, dead_letter: %s, changelog: %s, suppressions: %s}\n  lateness: 0s\n",
		strings.Join(cfg.Brokers, ", "), cfg.Topics.Clickstream, cfg.Topics.Transactions, cfg.Topics.Profiles, cfg.Topics.Triggers,
		cfg.Topics.DeadLetter, cfg.Topics.Changelog, cfg.Topics.Suppressions)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	jsonOut := filepath.Join(dir, "report.json")
	cmd := exec.CommandContext(ctx, harness.BuildTriggerd(t), "backtest", "--config", config, "--rules", cand, "--baseline", base,
		"--from", day.Format(time.DateOnly), "--to", day.Add(2*24*time.Hour).Format(time.RFC3339), "--json", jsonOut)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("triggerd backtest: %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	var rep struct {
		Baseline struct {
			Triggers int
			ByRule   map[string]int `json:"by_rule"`
		}
		Candidate   struct{ Triggers int }
		Differences struct{ Moved, Customers int }
	}
	data, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Baseline.Triggers != len(live) || rep.Baseline.ByRule["cart_abandoned"] != len(live) {
		t.Errorf("baseline: %d triggers (%v), the live processor emitted %d", rep.Baseline.Triggers, rep.Baseline.ByRule, len(live))
	}
	if rep.Candidate.Triggers != carts || rep.Differences.Moved != carts || rep.Differences.Customers != carts {
		t.Errorf("candidate: %d triggers, %d moved, %d customers; want %d each", rep.Candidate.Triggers, rep.Differences.Moved, rep.Differences.Customers, carts)
	}
	if after := productionSnapshot(t, ctx, adm, cfg); after != before {
		t.Errorf("the backtest changed the production cluster:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("summary:\n%s", stdout.String())
}

// productionSnapshot is what a backtest must leave as it was: the end
// offsets of the test's topics, the cluster's topic names and its
// consumer groups.
func productionSnapshot(t *testing.T, ctx context.Context, adm *kadm.Client, cfg processor.Config) string {
	t.Helper()
	topics := append(cfg.Inputs(), cfg.Topics.Triggers, cfg.SuppressionsTopic(), cfg.Topics.Changelog, cfg.Topics.DeadLetter)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	ends.Each(func(o kadm.ListedOffset) {
		lines = append(lines, fmt.Sprintf("%s[%d]=%d", o.Topic, o.Partition, o.Offset))
	})
	all, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, all.Names()...)
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, groups.Groups()...)
	sort.Strings(lines)
	return fmt.Sprint(lines)
}
