package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// TestAbsurdTimestampsFireNothing puts records stamped in 2099 and in 1971
// (event_time and Kafka timestamp alike) on every input, in the default
// event-time configuration, next to a cart whose reminder is due in half an
// hour. They are dead-lettered, and no timer fires early: not while the
// processor that read them runs, not after a restart (a new instance that
// restores the partition from the changelog), and not for a cart written
// after the restart. Before the fix one such record per input moved the
// watermark to 2099 for good and fired every timer at once.
func TestAbsurdTimestampsFireNothing(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1)
	def := processor.DefaultConfig()
	cfg.IdleAdvance, cfg.IdleGrace, cfg.Lateness = def.IdleAdvance, def.IdleGrace, def.Lateness
	p := harness.NewProducer(t, c, cfg, nil)
	now := time.Now().UTC()

	var bad []schemas.Event
	for i, at := range []time.Time{time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC)} {
		bad = append(bad,
			click(fmt.Sprintf("far-click-%d", i), "c-far", schemas.PageView, at, ""),
			purchase(fmt.Sprintf("far-buy-%d", i), "c-far", at),
			schemas.Event{Source: schemas.SourceProfile, ID: fmt.Sprintf("far-profile-%d", i), Customer: "c-far",
				Type: schemas.ProfileUpdate, Time: at, Country: "DE"},
		)
	}
	// The carts' reminders are due half an hour from now (rules: 1 h).
	cart := func(id, cust string) schemas.Event {
		return click(id, cust, schemas.AddToCart, now.Add(-30*time.Minute), "p1")
	}
	noTrigger := func(t *testing.T, when string) {
		t.Helper()
		got := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(0, 3*time.Second, 30*time.Second)
		for _, tr := range got {
			t.Errorf("%s: %s stage %d fired for %s, due %s: early", when, tr.Kind, tr.Stage, tr.Customer, tr.Due)
		}
	}

	t.Run("first", func(t *testing.T) {
		proc := harness.RunProcessor(t, cfg, harness.CartRules(t), nil)
		p.Send(1, cart("cart-1", "c-1"))
		// The Kafka timestamps are absurd too (the payload's
		// event_time is what counts): harness topics take them.
		p.Send(1, bad...)
		harness.WaitEvents(t, proc, int64(1+len(bad)))
		reasons := deadLetterReasons(t, c, cfg, len(bad))
		if reasons["absurd_timestamp"] != len(bad) {
			t.Errorf("dead letters by reason %v, want %d absurd_timestamp", reasons, len(bad))
		}
		// The cart waits for the idle inputs (reconnect_grace after
		// the start), then schedules its reminder; the watermark then
		// follows the wall clock, and must stop there.
		waitPendingTimers(t, proc, 1)
		noTrigger(t, "after the absurd records")
	})
	t.Run("restarted", func(t *testing.T) {
		proc := harness.RunProcessor(t, cfg, harness.CartRules(t), nil)
		p.Send(1, cart("cart-2", "c-2"))
		harness.WaitEvents(t, proc, 1)
		waitPendingTimers(t, proc, 2)
		noTrigger(t, "after the restart")
	})
}

// waitPendingTimers waits until the processor has n timers pending (each
// cart's first stage), at most 60 s.
func waitPendingTimers(t *testing.T, proc *processor.Processor, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for proc.Stats().PendingTimers != n {
		if time.Now().After(deadline) {
			t.Fatalf("pending timers %d after 60 s, want %d (each cart's first stage)", proc.Stats().PendingTimers, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deadLetterReasons reads want committed dead letters (or what came within
// 30 s) and counts them by reason.
func deadLetterReasons(t *testing.T, c *harness.Cluster, cfg processor.Config, want int) map[string]int {
	t.Helper()
	dlq := c.Client(t, kgo.ConsumeTopics(cfg.Topics.DeadLetter), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got, n := map[string]int{}, 0
	deadline := time.Now().Add(30 * time.Second)
	for n < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := dlq.PollFetches(ctx)
		cancel()
		for _, r := range fs.Records() {
			for _, h := range r.Headers {
				if h.Key == "dlq_reason" {
					got[string(h.Value)]++
					n++
				}
			}
		}
	}
	return got
}

// TestBacklogFiresEveryStage writes, as one backlog, a cart and a purchase
// made after both of the cart reminder's stages were due: the first stage
// fires before the purchase, and so must the second, which the first
// schedules while the purchase is already read. (It was lost: the second
// stage waited for the next firing, and the purchase cancelled it.)
func TestBacklogFiresEveryStage(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1)
	p := harness.NewProducer(t, c, cfg, nil)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	p.Send(1, click("cart", "c-1", schemas.AddToCart, t0, "p1"), purchase("buy", "c-1", t0.Add(26*time.Hour)))
	p.Tick(1, t0.Add(27*time.Hour))
	proc := harness.RunProcessor(t, cfg, harness.CartRules(t), nil)
	got := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(2, 3*time.Second, 60*time.Second)
	stages := map[int32]int{}
	for _, tr := range got {
		stages[tr.Stage]++
	}
	if len(got) != 2 || stages[1] != 1 || stages[2] != 1 {
		t.Errorf("got %d triggers by stage %v, want stage 1 and stage 2 once each (events committed: %d)", len(got), stages, proc.Stats().Events)
	}
}

// TestEmptyInputHoldsRecordsVisibly runs with idle_advance off while the
// profiles topic gets no record: every other record waits for it, durably
// and for good. That is the documented behaviour, and it must not be
// silent: triggerd_records_waiting counts the records held back, and a
// warning names the input that holds them. (Before, every input offset was
// committed, lag 0, and nothing said why no trigger came.)
func TestEmptyInputHoldsRecordsVisibly(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1) // idle_advance off
	core, logs := observer.New(zapcore.WarnLevel)
	reg := prometheus.NewRegistry()
	// The warning comes once records have waited 30 s of the processor's
	// clock, found by end-offset checks 10 s of it apart: the clock runs
	// ten times as fast as the wall's, or the test would wait 40 s for
	// them. Event time does not follow it (idle_advance off).
	began := time.Now()
	fast := func() time.Time { return began.Add(10 * time.Since(began)) }
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{Logger: zap.New(core), Registerer: reg, Clock: fast})
	p := harness.NewProducer(t, c, cfg, nil)
	t0 := time.Now().UTC().Add(-2 * time.Hour)
	p.Send(1, click("cart", "c-1", schemas.AddToCart, t0, "p1"), purchase("buy", "c-1", t0.Add(time.Minute)))
	harness.WaitEvents(t, proc, 2)

	deadline := time.Now().Add(90 * time.Second)
	for {
		warned := logs.FilterMessageSnippet("records wait for an input that has no records").All()
		if len(warned) > 0 {
			if got := warned[0].ContextMap()["holding_topic"]; got != cfg.Topics.Profiles {
				t.Errorf("the warning names %v as holding the records, want %s", got, cfg.Topics.Profiles)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no warning about the empty input within 90 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := gaugeSum(t, reg, "triggerd_records_waiting"); got != 2 {
		t.Errorf("triggerd_records_waiting = %v, want 2 (the cart and the purchase)", got)
	}
}

// gaugeSum adds up the series of a gauge in reg.
func gaugeSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// TestLateEventIsCountedAndExplained writes, once the watermark follows the
// wall clock, an event stamped an hour back: it is late. It is applied, but
// counted in triggerd_input_late_events_total and noted in the customer's
// audit trail as a late_event with its ID; an event on time is neither.
func TestLateEventIsCountedAndExplained(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1)
	def := processor.DefaultConfig()
	cfg.IdleAdvance, cfg.IdleGrace, cfg.Lateness = def.IdleAdvance, def.IdleGrace, def.Lateness
	reg := prometheus.NewRegistry()
	proc, store := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{Registerer: reg})
	p := harness.NewProducer(t, c, cfg, nil)
	p.Send(1, click("on-time", "c-on-time", schemas.PageView, time.Now().UTC(), ""))
	harness.WaitEvents(t, proc, 1)
	// The watermark follows the wall clock once the idle inputs are
	// vouched for (reconnect_grace after the start).
	deadline := time.Now().Add(60 * time.Second)
	for gaugeSum(t, reg, "triggerd_watermark_lag_seconds") > 10 || gaugeSum(t, reg, "triggerd_watermark_lag_seconds") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watermark did not follow the wall clock within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Send(1, click("late-1", "c-late", schemas.PageView, time.Now().UTC().Add(-time.Hour), ""))
	harness.WaitEvents(t, proc, 2)
	// A late record waits for the idle grace before it is applied.
	var late state.CustomerState
	for found := false; !found; {
		var err error
		if late, found, err = store.ReadCustomer(0, "c-late"); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("c-late not applied within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := counterSum(t, reg, "triggerd_input_late_events_total"); got != 1 {
		t.Errorf("triggerd_input_late_events_total = %v, want 1", got)
	}
	if n := len(late.Customer.Decisions); n != 1 || late.Customer.Decisions[0].Action != schemas.DecisionLateEvent ||
		late.Customer.Decisions[0].Event != "late-1" || late.Customer.Events != 1 {
		t.Errorf("c-late: events %d, decisions %+v; want the event applied and one late_event for late-1", late.Customer.Events, late.Customer.Decisions)
	}
	onTime, _, err := store.ReadCustomer(0, "c-on-time")
	if err != nil || len(onTime.Customer.Decisions) != 0 {
		t.Errorf("c-on-time: decisions %+v (%v), want none", onTime.Customer.Decisions, err)
	}
}

// counterSum adds up the series of a counter in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
