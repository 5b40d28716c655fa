package system

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestPythonRawClickstream is the newcomer's raw input, end to end: Python
// confluent-kafka with its default settings writes add_to_cart events to a
// raw clickstream keyed by session ID, with 5 partitions, beside
// 6-partition co-partitioned inputs, and for every second customer a
// purchase to transactions, keyed by customer ID, milliseconds later.
// triggerd runs in its default configuration with clickstream declared raw
// and kafka.partitioner crc32 (the Python producer's, for transactions).
// The triggers must be exactly those of the reference model over the events
// the producer reports: a reminder for every cart left, none for a cart
// bought.
func TestPythonRawClickstream(t *testing.T) {
	needBroker(t)
	python := pythonWithKafka(t)
	c := harness.NewCluster(t)
	const parts, rawParts = 6, 5
	cfg := c.Topics(t, parts)
	cfg.Topics.Clickstream += "-raw"
	cfg.Repartition.Inputs = []string{"clickstream"}
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, rawParts, 1, nil, cfg.Topics.Clickstream); err != nil {
		t.Fatal(err)
	}
	harness.WaitTopics(t, ctx, adm, rawParts, cfg.Topics.Clickstream)

	dir := harness.WorkDir(t)
	logf, err := os.Create(filepath.Join(dir, "triggerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ops := harness.FreeAddr(t)
	mc := modelConfig{version: 1, stage1: 3 * time.Second, stage2: time.Hour, lateness: processor.DefaultConfig().Lateness}
	conf := harness.WriteDefaultConfig(t, cfg, dir, ops, mc.stage1, mc.stage2,
		harness.DefaultConfigExtra{Kafka: []string{"partitioner: crc32", "repartition:", "  inputs: [clickstream]"}})
	ch := harness.NewChild(t, harness.BuildTriggerd(t), conf, logf, ops)
	if tr := os.Getenv("PY_TRACE"); tr != "" {
		ch.Env = append(ch.Env, "TRIGGERD_TEST_TRACE="+tr)
	}
	ch.Start()
	waitReady(t, ch)

	const rounds, customers, gapMs = 6, 40, 3
	events := map[schemas.CustomerID][]modelEvent{}
	seq := 0
	for r := range rounds {
		for _, w := range runPython(t, python, "raw_session_carts.py", cfg.Brokers[0], cfg.Topics.Clickstream, cfg.Topics.Transactions,
			fmt.Sprint(r), fmt.Sprint(customers), fmt.Sprint(gapMs)) {
			var line struct {
				Customer  string `json:"customer"`
				Source    string `json:"source"`
				ID        string `json:"event_id"`
				Type      string `json:"type"`
				Time      string `json:"event_time"`
				ProductID string `json:"product_id"`
				Quantity  int32  `json:"quantity"`
			}
			if err := json.Unmarshal([]byte(w), &line); err != nil {
				t.Fatalf("python wrote %q: %v", w, err)
			}
			at, err := time.Parse(time.RFC3339Nano, line.Time)
			if err != nil {
				t.Fatalf("python wrote event time %q: %v", line.Time, err)
			}
			src := schemas.SourceClickstream
			if line.Source == "transactions" {
				src = schemas.SourceTransaction
			}
			seq++
			events[schemas.CustomerID(line.Customer)] = append(events[schemas.CustomerID(line.Customer)], modelEvent{
				source: src, seq: seq, id: line.ID, typ: schemas.EventType(line.Type), at: at, prod: line.ProductID, qty: line.Quantity,
			})
		}
	}
	if len(events) != rounds*customers {
		t.Fatalf("the producer reported %d customers, want %d", len(events), rounds*customers)
	}
	all, _ := expect(mc, events)
	want := map[string]string{} // stage 1 only: stage 2 is an hour away
	for id, what := range all {
		if strings.HasSuffix(what, "/1") {
			want[id] = what
		}
	}
	if len(want) == 0 || len(want) == len(events) {
		t.Fatalf("the model expects %d reminders for %d customers: the purchases must cancel some, not all", len(want), len(events))
	}
	// Every trigger this test can produce is a first stage, due
	// stage1 after its cart: once every input record is committed and
	// the watermark of every partition, which follows the wall clock
	// (idle_advance), is past the last cart's reminder, no trigger is
	// still to come. Once it has also fired as many timers as the model
	// expects reminders (on a loaded machine a cycle may come late),
	// triggerd is stopped (a graceful stop commits its last cycle), and
	// the triggers read are all there will be: a duplicate or an
	// unexpected one among them shows.
	var last time.Time
	for _, evs := range events {
		for _, e := range evs {
			if e.at.After(last) {
				last = e.at
			}
		}
	}
	harness.WaitCaughtUp(t, c, cfg, ch)
	def := processor.DefaultConfig()
	time.Sleep(time.Until(last.Add(mc.stage1 + mc.lateness + def.IdleGrace + 2*time.Second)))
	harness.WaitCaughtUp(t, c, cfg, ch)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		fired, err := metricSum(ops, "triggerd_timers_fired_total ")
		if err == nil && fired >= float64(len(want)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("triggerd fired %v timers within 2 minutes of the last cart (%v), want at least %d (log: %s)", fired, err, len(want), logf.Name())
		}
	}
	repartitioned, _ := metricSum(ops, "triggerd_repartition_records_total{")
	dead, _ := metricSum(ops, "triggerd_input_dead_lettered_total{")
	late := metricOr(ops, "triggerd_input_late_events_total{")
	ch.Stop()
	got := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(len(want), 5*time.Second, 2*time.Minute)
	seen := map[string]int{}
	var wrong []string
	for _, tr := range got {
		seen[tr.ID]++
		if _, ok := want[tr.ID]; !ok {
			wrong = append(wrong, fmt.Sprintf("unexpected %s stage %d for %s", tr.Kind, tr.Stage, tr.Customer))
		}
	}
	for id, what := range want {
		if seen[id] != 1 {
			wrong = append(wrong, fmt.Sprintf("%s written %d times, want once", what, seen[id]))
		}
	}
	sort.Strings(wrong)
	t.Logf("python-raw: customers=%d raw_partitions=%d partitions=%d reminders=%d expected=%d wrong=%d repartitioned=%g dead_lettered=%g late_events=%v",
		len(events), rawParts, parts, len(got), len(want), len(wrong), repartitioned, dead, late)
	if len(wrong) > 0 {
		t.Errorf("%d wrong triggers; e.g. %v (log: %s)", len(wrong), wrong[:min(len(wrong), 10)], logf.Name())
	}
	if repartitioned != float64(rounds*customers) || dead != 0 {
		t.Errorf("repartitioned %g raw records, dead-lettered %g; want %d and 0", repartitioned, dead, rounds*customers)
	}
}
