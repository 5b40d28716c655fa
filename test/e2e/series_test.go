package e2e

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRevokedPartitionSeries: after a rebalance moves partitions to a new
// instance, the old owner no longer exports any series of them, and the
// pending timers summed over the instances are the customers' timers, each
// counted once. Before, the old owner kept exporting triggerd_timers_pending
// (and every other per-partition series) of the partitions it gave away.
func TestRevokedPartitionSeries(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 4
	const customers = 60
	cfg := c.Topics(t, parts)
	cfgA, cfgB := cfg, cfg
	cfgA.InstanceID, cfgB.InstanceID = "a", "b"
	a := start(t, cfgA, memStore(t))

	// One cart each: one pending timer per customer (stage 1, due in an
	// hour of event time, which the tick does not reach).
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	var evs []schemas.Event
	for i := range customers {
		evs = append(evs, click(fmt.Sprintf("e-%d", i), fmt.Sprintf("cust-%d", i), schemas.AddToCart, t0.Add(time.Duration(i)*time.Second), "p1"))
	}
	p := harness.NewProducer(t, c, cfg, nil)
	p.Send(parts, evs...)
	p.Tick(parts, t0.Add(10*time.Minute))
	harness.WaitEvents(t, a.proc, customers+3*parts)
	waitFor(t, "A's pending timers", func() bool { return a.proc.Stats().PendingTimers == customers })
	if got := partitionSeries(t, a.reg, "triggerd_timers_pending"); len(got) != parts || sum(got) != customers {
		t.Fatalf("A alone: triggerd_timers_pending %v, want %d partitions summing to %d", got, parts, customers)
	}

	b := start(t, cfgB, memStore(t))
	waitFor(t, "the partitions split between A and B", func() bool {
		na, nb := 0, 0
		for part := range int32(parts) {
			sa, sb := a.proc.Serves(part), b.proc.Serves(part)
			if sa == sb {
				return false
			}
			if sa {
				na++
			} else {
				nb++
			}
		}
		return na > 0 && nb > 0
	})
	owned := func(r *running) []string {
		var out []string
		for part := range int32(parts) {
			if r.proc.Serves(part) {
				out = append(out, strconv.Itoa(int(part)))
			}
		}
		return out
	}
	// The series follow the ownership within the cycle that changes it.
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for {
		pa, pb := partitionSeries(t, a.reg, "triggerd_timers_pending"), partitionSeries(t, b.reg, "triggerd_timers_pending")
		ok := sum(pa)+sum(pb) == customers && slices.Equal(sortedKeys(pa), owned(a)) && slices.Equal(sortedKeys(pb), owned(b))
		last = fmt.Sprintf("A owns %v and exports %v; B owns %v and exports %v; sum %v, want %d", owned(a), pa, owned(b), pb, sum(pa)+sum(pb), customers)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("triggerd_timers_pending after the rebalance: %s", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Log(last)
	// No series of any metric with a partition label for a partition A
	// gave away.
	mine := map[string]bool{}
	for _, part := range owned(a) {
		mine[part] = true
	}
	fams, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "partition" {
					continue
				}
				checked[f.GetName()] = true
				if !mine[l.GetValue()] {
					t.Errorf("A exports %s%v for partition %s, which B owns", f.GetName(), m.GetLabel(), l.GetValue())
				}
			}
		}
	}
	for _, name := range []string{"triggerd_timers_pending", "triggerd_store_write_back_bytes", "triggerd_watermark_lag_seconds",
		"triggerd_input_events_total", "triggerd_input_lost_records_total"} {
		if !checked[name] {
			t.Errorf("A exports no %s at all: the check above proves nothing for it", name)
		}
	}
}

// partitionSeries returns a gauge's values by partition.
func partitionSeries(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

func sortedKeys(m map[string]float64) []string {
	ks := slices.Collect(maps.Keys(m))
	sort.Slice(ks, func(i, j int) bool {
		a, _ := strconv.Atoi(ks[i])
		b, _ := strconv.Atoi(ks[j])
		return a < b
	})
	return ks
}

// TestCountersAtZero: the labelled counters the alerts watch exist at 0 as
// soon as the processor is created (by result, by input topic and
// dead-letter reason) or, per partition, as soon as it owns the partition,
// so that increase() and rate() see their first event. A series that first
// appears at 1 is invisible to increase(): TriggerdRulesReloadRejected could
// not fire on the first rejected reload after a start.
func TestCountersAtZero(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 2
	cfg := c.Topics(t, parts)
	r := start(t, cfg, memStore(t))
	scrape := func() string {
		code, body := get(r.proc.OpsHandler(r.reg), "/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		return body
	}
	want := []string{
		`triggerd_rules_reloads_total{result="applied"} 0`,
		`triggerd_rules_reloads_total{result="rejected"} 0`,
		`triggerd_transactions_total{result="committed"} 0`,
		`triggerd_transactions_total{result="aborted"} 0`,
		`triggerd_kafka_session_restarts_total 0`,
		`triggerd_rules_eval_errors_total 0`,
	}
	for _, topic := range cfg.Inputs() {
		want = append(want, fmt.Sprintf(`triggerd_input_duplicates_total{topic=%q} 0`, topic))
		for _, reason := range []string{"invalid_json", "bad_framing", "wrong_schema", "missing_customer_id", "missing_event_id", "missing_type",
			"bad_field", "key_mismatch", "absurd_timestamp", "unknown_type"} {
			want = append(want, fmt.Sprintf(`triggerd_input_dead_lettered_total{reason=%q,topic=%q} 0`, reason, topic))
		}
	}
	// Right after the start: before the group has assigned anything (the
	// registry is filled by processor.New).
	body := scrape()
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("right after the start, /metrics has no %s", w)
		}
	}
	// Once it owns its partitions, their counters too.
	waitFor(t, "ready", r.proc.Ready)
	body = scrape()
	for part := range parts {
		for _, topic := range cfg.Inputs() {
			for _, name := range []string{"triggerd_input_lost_records_total", "triggerd_input_events_total"} {
				w := fmt.Sprintf(`%s{partition="%d",topic=%q} 0`, name, part, topic)
				if !strings.Contains(body, w+"\n") {
					t.Errorf("with partition %d assigned, /metrics has no %s", part, w)
				}
			}
		}
	}
}
