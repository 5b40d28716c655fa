package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

func click(id, cust string, typ schemas.EventType, at time.Time, product string) schemas.Event {
	return schemas.Event{Source: schemas.SourceClickstream, ID: id, Customer: schemas.CustomerID(cust), Type: typ, Time: at,
		ProductID: product, Quantity: 1, Price: schemas.Money{Minor: 2500, Currency: "EUR"}}
}

func purchase(id, cust string, at time.Time) schemas.Event {
	return schemas.Event{Source: schemas.SourceTransaction, ID: id, Customer: schemas.CustomerID(cust), Type: schemas.Purchase, Time: at,
		OrderID: "o-" + id, Amount: schemas.Money{Minor: 2500, Currency: "EUR"}}
}

// TestCartAbandonment drives the two-stage cart abandonment rule through
// Kafka with event time: stage 1 one hour after the last cart change, stage
// 2 a day after stage 1 was due; a purchase cancels, a cart change restarts
// the clock, an emptied cart cancels.
//
// It runs with JSON on every topic and the default produce codec (snappy),
// and with Avro in the Confluent framing through an in-process schema
// registry and zstd (kafka.compression).
func TestCartAbandonment(t *testing.T) {
	t.Run("json", func(t *testing.T) { testCartAbandonment(t, schemas.FormatJSON, "snappy") })
	t.Run("avro", func(t *testing.T) { testCartAbandonment(t, schemas.FormatAvro, "zstd") })
}

func testCartAbandonment(t *testing.T, f schemas.Format, codec string) {
	c := harness.NewCluster(t)
	const parts = 3
	cfg := c.Topics(t, parts)
	if codec != "snappy" {
		cfg.Compression = codec
	}
	var reg *sr.Client
	if f == schemas.FormatAvro {
		fake := srfake.New()
		t.Cleanup(fake.Close)
		var err error
		if reg, err = sr.NewClient(sr.URLs(fake.URL())); err != nil {
			t.Fatal(err)
		}
		cfg.Registry.URL = fake.URL()
	}
	cfg.Encodings = processor.Encodings{Clickstream: f, Transactions: f, Profiles: f, Triggers: f}
	metrics := prometheus.NewRegistry()
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), reg, processor.Options{Registerer: metrics})
	p := harness.NewProducer(t, c, cfg, reg)
	reader := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, f, reg)

	t0 := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	evs := []schemas.Event{
		// abandoned: stage 1 at +60m, stage 2 at +24h60m
		click("a1", "abandoner", schemas.AddToCart, m(0), "p1"),
		// bought within the hour: nothing
		click("b1", "buyer", schemas.AddToCart, m(0), "p1"),
		purchase("b2", "buyer", m(30)),
		// cart changed at +45m: the clock restarts, stage 1 at +105m
		click("r1", "restarter", schemas.AddToCart, m(0), "p1"),
		click("r2", "restarter", schemas.AddToCart, m(45), "p2"),
		// emptied cart at +10m: nothing
		click("e1", "emptier", schemas.AddToCart, m(0), "p1"),
		click("e2", "emptier", schemas.RemoveFromCart, m(10), "p1"),
		// bought after stage 1 (see below): stage 1 only
		click("l1", "late-buyer", schemas.AddToCart, m(0), "p1"),
		// only browsing: nothing
		click("v1", "browser", schemas.ProductView, m(5), "p1"),
	}
	p.Send(parts, evs...)
	harness.WaitEvents(t, proc, int64(len(evs)))
	p.Tick(parts, m(120))
	harness.WaitEvents(t, proc, int64(len(evs)+3*parts))

	got := reader.Read(3, time.Second, 60*time.Second)
	checkTriggers(t, got, []string{"abandoner/1", "late-buyer/1", "restarter/1"})
	for _, tr := range got {
		wantDue := m(60)
		if tr.Customer == "restarter" {
			wantDue = m(105)
		}
		if !tr.Due.Equal(wantDue) {
			t.Errorf("%s stage %d due %s, want %s", tr.Customer, tr.Stage, tr.Due, wantDue)
		}
		if tr.Channel != "email" {
			t.Errorf("%s stage 1 on channel %q, want email", tr.Customer, tr.Channel)
		}
	}

	p.Send(parts, purchase("l2", "late-buyer", m(150)))
	p.Tick(parts, m(24*60+120))
	harness.WaitEvents(t, proc, int64(len(evs)+1+6*parts))
	got2 := reader.Read(2, time.Second, 60*time.Second)
	checkTriggers(t, got2, []string{"abandoner/2", "restarter/2"})
	for _, tr := range got2 {
		if tr.Channel != "push" {
			t.Errorf("%s stage 2 on channel %q, want push", tr.Customer, tr.Channel)
		}
	}
	checkUniqueIDs(t, append(got, got2...))

	// The cycles that carried them show in every phase of the cycle
	// histogram (exactly-once: end too), one observation per phase per
	// committed cycle, and their state writes in the store's WAL bytes.
	cycles := metric(t, metrics, "triggerd_cycle_seconds", nil).GetHistogram().GetSampleCount()
	if cycles == 0 {
		t.Fatal("no cycle observed")
	}
	for _, phase := range []string{"process", "flush", "end", "apply"} {
		n := metric(t, metrics, "triggerd_cycle_phase_seconds", map[string]string{"phase": phase}).GetHistogram().GetSampleCount()
		if n == 0 || n > cycles+1 { // +1: a cycle may be between phases
			t.Errorf("phase %s observed %d times in %d cycles", phase, n, cycles)
		}
	}
	if wal := metric(t, metrics, "triggerd_store_wal_bytes_total", nil).GetCounter().GetValue(); wal <= 0 {
		t.Errorf("store WAL bytes = %v after the cart events were committed", wal)
	}
	// Every fired timer is in the fire-lag histogram (the replay's event
	// times are days old, so all land past the 1 s bound).
	fired := metric(t, metrics, "triggerd_timers_fired_total", nil).GetCounter().GetValue()
	lag := metric(t, metrics, "triggerd_timers_fire_lag_seconds", nil).GetHistogram()
	if fired < 5 || float64(lag.GetSampleCount()) != fired {
		t.Errorf("fire lag observed %d timers, %v fired (want >= 5, the same)", lag.GetSampleCount(), fired)
	}
	for _, b := range lag.GetBucket() {
		if b.GetUpperBound() == 1 && b.GetCumulativeCount() != 0 {
			t.Errorf("%d timers of a days-old replay fired within 1 s of their due time", b.GetCumulativeCount())
		}
	}
	checkCodec(t, c, cfg.Topics.Changelog, codec)
	checkChangelogCounts(t, c, cfg.Topics.Changelog, metrics)
}

// checkChangelogCounts reads the changelog topic to its end (committed
// records only) and checks that triggerd_changelog_records_total counts
// exactly its records, by kind (the key's first byte, see the changelog
// format in state/doc.go) and op (a nil value is a tombstone).
func checkChangelogCounts(t *testing.T, c *harness.Cluster, topic string, reg *prometheus.Registry) {
	t.Helper()
	kinds := map[byte]string{'c': "customer", 'r': "timer", 'h': "held", 'm': "offsets"}
	read := map[[2]string]float64{}
	readChangelog(t, c, topic, func(r *kgo.Record) {
		if len(r.Key) == 0 {
			t.Errorf("changelog record with an empty key")
			return
		}
		kind, ok := kinds[r.Key[0]]
		if !ok || kind == "offsets" && string(r.Key) != "moffsets" {
			t.Errorf("changelog record with key %q: not a kind the changelog format has", r.Key)
			return
		}
		op := "set"
		if r.Value == nil {
			op = "delete"
		}
		read[[2]string{kind, op}]++
	})
	if read[[2]string{"customer", "set"}] == 0 || read[[2]string{"timer", "set"}] == 0 || read[[2]string{"timer", "delete"}] == 0 {
		t.Fatalf("changelog %s: records by kind and op %v: want customers, timers and timer tombstones", topic, read)
	}
	for _, kind := range kinds {
		for _, op := range []string{"set", "delete"} {
			got := metric(t, reg, "triggerd_changelog_records_total", map[string]string{"kind": kind, "op": op}).GetCounter().GetValue()
			if want := read[[2]string{kind, op}]; got != want {
				t.Errorf("triggerd_changelog_records_total{kind=%q,op=%q} = %v, the changelog has %v", kind, op, got, want)
			}
		}
	}
}

// checkCodec reads topic from the start and checks that its batches are
// compressed with codec: at least one is, and none with another codec (kgo
// sends a batch uncompressed when compressing does not shrink it).
func checkCodec(t *testing.T, c *harness.Cluster, topic, codec string) {
	t.Helper()
	want := map[string]uint8{"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	compressed, records := 0, 0
	for records < 10 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			records++
			switch got := r.Attrs.CompressionType(); got {
			case want:
				compressed++
			case 0:
			default:
				t.Errorf("%s: a record compressed with codec %d, want %d (%s) or none", topic, got, want, codec)
			}
		})
	}
	if compressed == 0 {
		t.Errorf("%s: none of %d records compressed with %s", topic, records, codec)
	}
}

// checkTriggers compares "customer/stage" of the cart_abandoned triggers
// with want, and the header ID with the value's ID.
func checkTriggers(t *testing.T, got []harness.FiredTrigger, want []string) {
	t.Helper()
	var have []string
	for _, tr := range got {
		if tr.Kind != "cart_abandoned" {
			t.Errorf("unexpected trigger kind %q", tr.Kind)
		}
		if tr.HeaderID != tr.ID {
			t.Errorf("trigger header ID %q differs from the value's ID %q", tr.HeaderID, tr.ID)
		}
		have = append(have, fmt.Sprintf("%s/%d", tr.Customer, tr.Stage))
	}
	sort.Strings(have)
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("triggers:\n got %v\nwant %v", have, want)
	}
}

func checkUniqueIDs(t *testing.T, got []harness.FiredTrigger) {
	t.Helper()
	seen := map[string]bool{}
	for _, tr := range got {
		if seen[tr.ID] {
			t.Errorf("trigger ID %s delivered twice", tr.ID)
		}
		seen[tr.ID] = true
	}
}

// TestCrossTopicOrder delivers the transactions topic ahead of the
// clickstream topic: the processor must still apply the events in event-time
// order across the topics, as live traffic would have them. A purchase
// fetched before the earlier cart change still cancels it; a purchase after
// stage 1 was due, fetched before the cart change, does not stop stage 1.
func TestCrossTopicOrder(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 2
	cfg := c.Topics(t, parts)
	proc := harness.RunProcessor(t, cfg, harness.CartRules(t), nil)
	p := harness.NewProducer(t, c, cfg, nil)
	reader := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil)

	t0 := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	// The transactions arrive first and are consumed on their own.
	p.Send(parts, purchase("b2", "buyer", m(30)), purchase("l2", "late-buyer", m(90)))
	harness.WaitEvents(t, proc, 2)
	p.Send(parts,
		click("b1", "buyer", schemas.AddToCart, m(0), "p1"),
		click("l1", "late-buyer", schemas.AddToCart, m(0), "p1"),
	)
	harness.WaitEvents(t, proc, 4)
	p.Tick(parts, m(48*60))
	harness.WaitEvents(t, proc, int64(4+3*parts))
	got := reader.Read(1, time.Second, 60*time.Second)
	checkTriggers(t, got, []string{"late-buyer/1"})
}
