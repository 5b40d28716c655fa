package system

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestPythonCartThenPurchase drives triggerd in its default configuration
// (idle_advance on, default idle_grace and lateness, no heartbeats) with a
// producer that is not ours: Python confluent-kafka with its default
// settings writes, while triggerd runs, an add_to_cart to clickstream and,
// for every second customer, a purchase to transactions a few milliseconds
// later. Twenty rounds stamp the events with the same moment ten minutes
// in the past (a replay written live, whose first reminder is due at once:
// this failed before the idle grace), twenty more with the wall clock. Every purchase must cancel its cart
// reminder, every time: the customers who bought get nothing, the others
// exactly one first-stage reminder.
func TestPythonCartThenPurchase(t *testing.T) {
	needBroker(t)
	python := pythonWithKafka(t)
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 2)
	dir := harness.WorkDir(t)
	logf, err := os.Create(filepath.Join(dir, "triggerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ops := harness.FreeAddr(t)
	// Stage 1 a few seconds after the cart, stage 2 (an hour) never
	// within the test.
	// Python's default partitioner is librdkafka's (CRC32): triggerd is
	// told so, or it would dead-letter most records as misrouted.
	conf := harness.WriteDefaultConfig(t, cfg, dir, ops, 3*time.Second, time.Hour,
		harness.DefaultConfigExtra{Kafka: []string{"partitioner: crc32"}})
	ch := harness.NewChild(t, harness.BuildTriggerd(t), conf, logf, ops)
	if tr := os.Getenv("PY_TRACE"); tr != "" {
		ch.Env = append(ch.Env, "TRIGGERD_TEST_TRACE="+tr)
	}
	ch.Start()
	defer ch.Stop()
	waitReady(t, ch)

	const rounds, customers, gapMs = 20, 40, 3
	buyers := map[string]bool{}
	// The replay rounds first: each input's times only go forward, as
	// they do when a replay is written into idle topics. A replay
	// written behind live records of the same topic is late by
	// definition (its records wait behind the live ones in their
	// partition).
	for _, mode := range []string{"past", "live"} {
		for r := range rounds {
			for _, w := range runPython(t, python, "cart_then_purchase.py", cfg.Brokers[0], cfg.Topics.Clickstream, cfg.Topics.Transactions,
				fmt.Sprintf("%s%d", mode, r), fmt.Sprint(customers), fmt.Sprint(gapMs), mode) {
				var line struct {
					Customer string `json:"customer"`
					Bought   bool   `json:"bought"`
				}
				if err := json.Unmarshal([]byte(w), &line); err != nil {
					t.Fatalf("python wrote %q: %v", w, err)
				}
				buyers[line.Customer] = line.Bought
			}
		}
	}
	want := 0
	for _, bought := range buyers {
		if !bought {
			want++
		}
	}
	if len(buyers) != 2*rounds*customers {
		t.Fatalf("the producer reported %d customers, want %d", len(buyers), 2*rounds*customers)
	}
	got := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(want, 5*time.Second, 2*time.Minute)
	reminded := map[string]int{}
	var wrong []string
	for _, tr := range got {
		bought, known := buyers[tr.Customer]
		switch {
		case !known || tr.Kind != "cart_abandoned" || tr.Stage != 1:
			wrong = append(wrong, fmt.Sprintf("unexpected %s stage %d for %s", tr.Kind, tr.Stage, tr.Customer))
		case bought:
			wrong = append(wrong, fmt.Sprintf("%s bought, yet got the cart reminder", tr.Customer))
		}
		reminded[tr.Customer]++
	}
	missing := 0
	for cust, bought := range buyers {
		if !bought && reminded[cust] != 1 {
			missing++
			if len(wrong) < 10 {
				wrong = append(wrong, fmt.Sprintf("%s left the cart and got %d reminders, want 1", cust, reminded[cust]))
			}
		}
	}
	t.Logf("python-live: rounds=%d customers=%d reminders=%d expected=%d wrong=%d missing=%d late_events=%v",
		2*rounds, len(buyers), len(got), want, len(wrong), missing, metricOr(ch.Ops, "triggerd_input_late_events_total{"))
	if len(wrong) > 0 {
		t.Errorf("%d wrong triggers; e.g. %v (log: %s)", len(wrong), wrong[:min(len(wrong), 10)], logf.Name())
	}
}

// pythonWithKafka returns a python with confluent-kafka, from the virtual
// environment test/python/setup.sh makes (once; it needs PyPI).
func pythonWithKafka(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../python/setup.sh").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("setting up Python with confluent-kafka (test/python/setup.sh): %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// runPython runs a script of test/python and returns its output lines; a
// script that fails fails the test.
func runPython(t *testing.T, python, script string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(python, append([]string{filepath.Join("..", "python", script)}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// metricOr returns the sum of a metric's series, or the error as text.
func metricOr(ops, prefix string) string {
	v, err := metricSum(ops, prefix)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(v)
}
