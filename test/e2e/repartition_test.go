package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// rawSetup makes cfg's clickstream a raw input: a topic of rawParts
// partitions, beside the co-partitioned ones of cfg.
func rawSetup(t *testing.T, c *harness.Cluster, cfg *processor.Config, rawParts int32) {
	t.Helper()
	cfg.Topics.Clickstream += "-raw"
	cfg.Repartition.Inputs = []string{"clickstream"}
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	anyTime := "9223372036854775807"
	if _, err := adm.CreateTopic(ctx, rawParts, 1, map[string]*string{"message.timestamp.before.max.ms": &anyTime}, cfg.Topics.Clickstream); err != nil {
		t.Fatal(err)
	}
	harness.WaitTopics(t, ctx, adm, rawParts, cfg.Topics.Clickstream)
}

// rawClick is a clickstream record as a producer keyed by session writes
// it: keyed by session, on a partition of the raw topic's own, with a
// header the stage must keep.
func rawClick(t *testing.T, p *harness.Producer, topic string, ev schemas.Event, session string, part int32) *kgo.Record {
	t.Helper()
	val, err := p.Encode(&ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Partition: part, Key: []byte(session), Value: val, Timestamp: ev.Time,
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte(ev.ID)}}}
}

// TestRawInputRepartitioned writes carts to a raw clickstream keyed by
// session ID, with 5 partitions beside 4-partition co-partitioned inputs:
// every cart fires its reminder from its customer's partition; each raw
// record is in the internal topic once, keyed by customer ID on the
// customer's partition, with its timestamp and headers; raw records without
// a customer ID or that do not decode are dead-lettered with the decoder's
// reason, and counted; nothing of them reaches a worker.
func TestRawInputRepartitioned(t *testing.T) {
	c := harness.NewCluster(t)
	const parts, rawParts = 4, 5
	cfg := c.Topics(t, parts)
	cfg.IdleAdvance = true
	cfg.Repartition.PurgeInterval = time.Hour // the internal topic is read whole below
	rawSetup(t, c, &cfg, rawParts)
	metrics := prometheus.NewRegistry()
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{Registerer: metrics})
	p := harness.NewProducer(t, c, cfg, nil)
	reader := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil)

	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Millisecond)
	var recs []*kgo.Record
	var want []string
	stamps := map[string]time.Time{} // event ID -> raw timestamp
	rawPart := map[string]int32{}    // event ID -> raw partition
	for i := range 15 {
		cust := fmt.Sprintf("raw-cust-%02d", i)
		ev := click(fmt.Sprintf("rc%d", i), cust, schemas.AddToCart, t0.Add(time.Duration(i)*time.Millisecond), "p1")
		recs = append(recs, rawClick(t, p, cfg.Topics.Clickstream, ev, fmt.Sprintf("session-%d", i*7), int32(i)%rawParts))
		want = append(want, cust+"/1")
		stamps[ev.ID] = ev.Time
		rawPart[ev.ID] = int32(i) % rawParts
	}
	noCustomer := []byte(`{"event_id":"nc1","event_time":"` + t0.Format(time.RFC3339) + `","type":"add_to_cart","product_id":"p1","quantity":1,"price":{"minor":1,"currency":"EUR"}}`)
	bad := []*kgo.Record{
		{Topic: cfg.Topics.Clickstream, Partition: 1, Key: []byte("session-x"), Value: noCustomer, Timestamp: t0},
		{Topic: cfg.Topics.Clickstream, Partition: 3, Key: nil, Value: []byte(`{"event_id": "nope`), Timestamp: t0},
	}
	if err := p.WriteRecords(append(recs, bad...)...); err != nil {
		t.Fatal(err)
	}
	harness.WaitEvents(t, proc, int64(len(recs)))
	sort.Strings(want)
	checkTriggers(t, reader.Read(len(want), 2*time.Second, 60*time.Second), want)

	internal := cfg.RepartitionTopic(cfg.Topics.Clickstream)
	seen := map[string]int{}
	readTopic(t, c, internal, len(recs), func(r *kgo.Record) {
		h := headers(r)
		seen[h["trace"]]++
		var ev schemas.Event
		dec, _ := schemas.NewDecoder(schemas.SourceClickstream, schemas.FormatJSON, nil)
		if err := dec.Decode(r.Value, &ev); err != nil {
			t.Errorf("internal record at %d/%d: %v", r.Partition, r.Offset, err)
			return
		}
		if string(r.Key) != string(ev.Customer) || r.Partition != harness.PartitionOf(string(ev.Customer), parts) {
			t.Errorf("internal record of %s: key %q on partition %d, want the customer ID on %d", ev.Customer, r.Key, r.Partition,
				harness.PartitionOf(string(ev.Customer), parts))
		}
		if h["triggerd_raw_partition"] != fmt.Sprint(rawPart[ev.ID]) {
			t.Errorf("internal record of %s: raw partition header %q, want %d", ev.ID, h["triggerd_raw_partition"], rawPart[ev.ID])
		}
		if !r.Timestamp.Equal(stamps[ev.ID]) {
			t.Errorf("internal record of %s stamped %s, the raw one %s", ev.ID, r.Timestamp, stamps[ev.ID])
		}
	})
	for id := range stamps {
		if seen[id] != 1 {
			t.Errorf("event %s is %d times in the internal topic, want once", id, seen[id])
		}
	}

	dl := readDeadLetters(t, c, cfg.Topics.DeadLetter, len(bad))
	reasons := map[string]string{}
	for _, r := range dl {
		h := headers(r)
		reasons[h["dlq_source_partition"]] = h["dlq_reason"]
		if h["dlq_source_topic"] != cfg.Topics.Clickstream || h["dlq_stage"] != "repartition" {
			t.Errorf("dead letter headers %v: want the raw topic and the repartition stage", h)
		}
	}
	if reasons["1"] != schemas.ReasonMissingCustomerID || reasons["3"] != schemas.ReasonInvalidJSON || len(dl) != len(bad) {
		t.Errorf("dead letters by raw partition: %v; want 1: %s, 3: %s", reasons, schemas.ReasonMissingCustomerID, schemas.ReasonInvalidJSON)
	}
	if v := metric(t, metrics, "triggerd_repartition_records_total", map[string]string{"topic": cfg.Topics.Clickstream}).GetCounter().GetValue(); v != float64(len(recs)) {
		t.Errorf("repartitioned = %v, want %d", v, len(recs))
	}
	if v := metric(t, metrics, "triggerd_input_dead_lettered_total", map[string]string{"topic": cfg.Topics.Clickstream, "reason": schemas.ReasonMissingCustomerID}).GetCounter().GetValue(); v != 1 {
		t.Errorf("dead_lettered{raw, missing_customer_id} = %v, want 1", v)
	}
	if v := metric(t, metrics, "triggerd_repartition_lag_records", map[string]string{"topic": cfg.Topics.Clickstream}).GetGauge().GetValue(); v != 0 {
		t.Errorf("repartition lag = %v after everything was read, want 0", v)
	}
}

// dedupeCartRules is the cart rule with the rules file's dedupe of event
// IDs, which absorbs what at-least-once delivery writes twice.
func dedupeCartRules(t *testing.T) *rules.Set {
	t.Helper()
	rs, err := rules.Parse("cart+dedupe", append(rules.CartOnlyYAML(time.Hour, 24*time.Hour), "dedupe:\n  window: 24h\n  max_ids: 64\n"...))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// startWithRules is start with the rules rs.
func startWithRules(t *testing.T, cfg processor.Config, store *state.Store, rs *rules.Set) *running {
	t.Helper()
	r := &running{reg: prometheus.NewRegistry(), finished: make(chan struct{})}
	proc, err := processor.New(cfg, processor.Options{Logger: zaptest.NewLogger(t), Registerer: r.reg, Store: store, Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		r.err = proc.Run(ctx)
		close(r.finished)
	}()
	r.proc, r.cancel = proc, cancel
	t.Cleanup(func() {
		cancel()
		<-r.finished
	})
	return r
}

// TestRawInputAtLeastOnceDuplicates runs the stage at least once and makes
// it write every raw record a second time, as a crash between its flush and
// its offset commit does: the stage's group is set back to the start while
// the processor is stopped. The rules' dedupe absorbs the copies (same
// event IDs): each customer's state counts its events once, no trigger is
// written twice, and the duplicates are counted.
func TestRawInputAtLeastOnceDuplicates(t *testing.T) {
	c := harness.NewCluster(t)
	const parts, rawParts = 3, 5
	cfg := c.Topics(t, parts)
	cfg.IdleAdvance = true
	cfg.Guarantee = processor.AtLeastOnce
	cfg.Repartition.PurgeInterval = time.Hour // the copies are counted in the internal topic
	rawSetup(t, c, &cfg, rawParts)
	store := memStore(t)
	run := startWithRules(t, cfg, store, dedupeCartRules(t))
	p := harness.NewProducer(t, c, cfg, nil)

	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Millisecond)
	var recs []*kgo.Record
	var want []string
	for i := range 8 {
		cust := fmt.Sprintf("alo-%d", i)
		for k := range 2 {
			ev := click(fmt.Sprintf("alo%d-%d", i, k), cust, schemas.AddToCart, t0.Add(time.Duration(k)*time.Second), fmt.Sprintf("p%d", k))
			recs = append(recs, rawClick(t, p, cfg.Topics.Clickstream, ev, "s-"+cust, int32(i)%rawParts))
		}
		want = append(want, cust+"/1")
	}
	if err := p.WriteRecords(recs...); err != nil {
		t.Fatal(err)
	}
	harness.WaitEvents(t, run.proc, int64(len(recs)))
	sort.Strings(want)
	reader := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil)
	checkTriggers(t, reader.Read(len(want), 2*time.Second, 60*time.Second), want)
	run.stop(t)

	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The stage is a static member, which stays in its group after it
	// stops: remove it, as an operator resetting offsets would.
	if _, err := adm.LeaveGroup(ctx, kadm.LeaveGroup(cfg.RepartitionGroup()).InstanceIDs(cfg.InstanceID+"-repartition")); err != nil {
		t.Fatalf("removing the stopped stage from its group: %v", err)
	}
	rewind := kadm.Offsets{}
	for part := range int32(rawParts) {
		rewind.Add(kadm.Offset{Topic: cfg.Topics.Clickstream, Partition: part, At: 0, LeaderEpoch: -1})
	}
	if err := adm.CommitAllOffsets(ctx, cfg.RepartitionGroup(), rewind); err != nil {
		t.Fatalf("setting the stage's group back: %v", err)
	}

	again := startWithRules(t, cfg, store, dedupeCartRules(t))
	internal := cfg.RepartitionTopic(cfg.Topics.Clickstream)
	copies := 0
	readTopic(t, c, internal, 2*len(recs), func(*kgo.Record) { copies++ })
	if copies != 2*len(recs) {
		t.Fatalf("%d records in the internal topic, want each of the %d raw ones twice", copies, len(recs))
	}
	dups := func() float64 {
		return metric(t, again.reg, "triggerd_input_duplicates_total", map[string]string{"topic": internal}).GetCounter().GetValue()
	}
	for end := time.Now().Add(30 * time.Second); dups() < float64(len(recs)) && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if d := dups(); d != float64(len(recs)) {
		t.Errorf("duplicates counted %v, want %d (every copy)", d, len(recs))
	}
	again.stop(t)
	// Every trigger once, over both runs. Both have stopped: every
	// trigger they wrote is in the topic, and reading on for the quiet
	// time after the expected count shows a duplicate (reading for one
	// more than expected only waited out the timeout).
	all := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(len(want), 2*time.Second, 10*time.Second)
	checkTriggers(t, all, want)
	for i := range 8 {
		cust := schemas.CustomerID(fmt.Sprintf("alo-%d", i))
		sp := store.Partition(harness.PartitionOf(string(cust), parts))
		cs, err := sp.Customer(cust)
		if err != nil {
			t.Fatal(err)
		}
		if cs.Events != 2 || len(cs.Cart.Items) != 2 {
			t.Errorf("customer %s: %d events, %d cart items; want 2 and 2 (each event once)", cust, cs.Events, len(cs.Cart.Items))
		}
		sp.Abort()
	}
}

// readTopic reads topic (read_committed) from the start until n records
// came, or 30 s, passing each to fn.
func readTopic(t *testing.T, c *harness.Cluster, topic string, n int, fn func(*kgo.Record)) {
	t.Helper()
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	for got < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			got++
			fn(r)
		})
	}
	if got < n {
		t.Fatalf("%s: %d records within 30s, want %d", topic, got, n)
	}
}
