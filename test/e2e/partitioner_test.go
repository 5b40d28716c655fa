package e2e

import (
	"context"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// crc32Partition is librdkafka's default partitioner (consistent_random)
// for a keyed record, written here so the test does not depend on the
// processor's: zlib's CRC-32 of the key, unsigned, modulo the count.
func crc32Partition(key string, n int32) int32 {
	return int32(crc32.ChecksumIEEE([]byte(key)) % uint32(n))
}

// TestMisroutedRecordsAreDeadLettered writes cart records of some
// customers on the partition Kafka's default partitioner gives them (the
// configured murmur2) and of others on another partition, as a producer
// with another partitioner would: those are dead-lettered as misrouted
// with both partitions in the headers, counted per topic, and never
// applied (no trigger); the others fire as usual. On the old code the
// misrouted ones fired from a second, orphan record of the customer.
func TestMisroutedRecordsAreDeadLettered(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 4
	cfg := c.Topics(t, parts)
	cfg.IdleAdvance = true // no ticks: they are keyed per partition
	metrics := prometheus.NewRegistry()
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{Registerer: metrics})
	p := harness.NewProducer(t, c, cfg, nil)
	reader := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil)

	// The counter of every input exists at 0 before any record.
	for _, topic := range cfg.Inputs() {
		if v := metric(t, metrics, "triggerd_input_misrouted_total", map[string]string{"topic": topic}).GetCounter().GetValue(); v != 0 {
			t.Fatalf("misrouted{%s} = %v at start", topic, v)
		}
	}

	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	var good []schemas.Event
	var wrong []*kgo.Record
	expected := map[string]int32{} // misrouted customer -> its partition
	for i := range 6 {
		good = append(good, click(fmt.Sprintf("g%d", i), fmt.Sprintf("routed-%d", i), schemas.AddToCart, t0, "p1"))
		cust := fmt.Sprintf("misrouted-%d", i)
		ev := click(fmt.Sprintf("m%d", i), cust, schemas.AddToCart, t0, "p1")
		val, err := p.Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		want := harness.PartitionOf(cust, parts)
		expected[cust] = want
		wrong = append(wrong, &kgo.Record{Topic: cfg.Topics.Clickstream, Partition: (want + 1 + int32(i)%3) % parts,
			Key: []byte(cust), Value: val, Timestamp: t0})
	}
	p.Send(parts, good...)
	if err := p.WriteRecords(wrong...); err != nil {
		t.Fatal(err)
	}
	harness.WaitEvents(t, proc, int64(len(good)+len(wrong)))

	var wantTriggers []string
	for _, ev := range good {
		wantTriggers = append(wantTriggers, string(ev.Customer)+"/1")
	}
	sort.Strings(wantTriggers)
	checkTriggers(t, reader.Read(len(good), 2*time.Second, 60*time.Second), wantTriggers)

	dl := readDeadLetters(t, c, cfg.Topics.DeadLetter, len(wrong))
	if len(dl) != len(wrong) {
		t.Fatalf("%d dead letters, want the %d misrouted records", len(dl), len(wrong))
	}
	for _, r := range dl {
		h := headers(r)
		cust := string(r.Key)
		want, ok := expected[cust]
		if !ok || h["dlq_reason"] != "misrouted" {
			t.Errorf("dead letter of %q with reason %q", cust, h["dlq_reason"])
			continue
		}
		if h["dlq_expected_partition"] != strconv.Itoa(int(want)) || h["dlq_source_partition"] == h["dlq_expected_partition"] ||
			h["dlq_actual_partition"] != h["dlq_source_partition"] || h["dlq_partitioner"] != "murmur2" {
			t.Errorf("dead letter of %s: headers %v, want expected partition %d", cust, h, want)
		}
	}
	if v := metric(t, metrics, "triggerd_input_misrouted_total", map[string]string{"topic": cfg.Topics.Clickstream}).GetCounter().GetValue(); v != float64(len(wrong)) {
		t.Errorf("misrouted{clickstream} = %v, want %d", v, len(wrong))
	}
	if v := metric(t, metrics, "triggerd_input_dead_lettered_total", map[string]string{"topic": cfg.Topics.Clickstream, "reason": "misrouted"}).GetCounter().GetValue(); v != float64(len(wrong)) {
		t.Errorf("dead_lettered{misrouted} = %v, want %d", v, len(wrong))
	}
}

// TestCRC32Partitioner runs the processor with kafka.partitioner crc32
// against a producer that partitions as librdkafka does: nothing is
// misrouted, every customer fires, the triggers and the erased record are
// on the customer's partition under CRC32 (downstream consumers of the
// same client find one customer on one partition), and the erase event
// goes to the partition the customer's records are on.
func TestCRC32Partitioner(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 5
	cfg := c.Topics(t, parts)
	cfg.IdleAdvance = true
	cfg.Partitioner = processor.CRC32
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{})
	p := harness.NewProducer(t, c, cfg, nil)

	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	var recs []*kgo.Record
	differ := 0
	for i := range 12 {
		cust := fmt.Sprintf("cust-%02d", i)
		ev := click(fmt.Sprintf("e%d", i), cust, schemas.AddToCart, t0, "p1")
		val, err := p.Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if crc32Partition(cust, parts) != harness.PartitionOf(cust, parts) {
			differ++
		}
		recs = append(recs, &kgo.Record{Topic: cfg.Topics.Clickstream, Partition: crc32Partition(cust, parts), Key: []byte(cust), Value: val, Timestamp: t0})
	}
	if differ == 0 {
		t.Fatal("test customers: CRC32 and murmur2 agree on all; the test would prove nothing")
	}
	if err := p.WriteRecords(recs...); err != nil {
		t.Fatal(err)
	}
	harness.WaitEvents(t, proc, int64(len(recs)))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := proc.ProduceErase(ctx, "cust-03")
	if err != nil {
		t.Fatal(err)
	}
	if want := crc32Partition("cust-03", parts); rc.Partition != want {
		t.Errorf("erase event on partition %d, want the customer's %d under CRC32", rc.Partition, want)
	}

	out := c.Client(t, kgo.ConsumeTopics(cfg.Topics.Triggers), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	erased := false
	deadline := time.Now().Add(60 * time.Second)
	for (len(seen) < len(recs) || !erased) && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
		fs := out.PollFetches(pctx)
		pcancel()
		for _, r := range fs.Records() {
			cust := string(r.Key)
			if want := crc32Partition(cust, parts); r.Partition != want {
				t.Errorf("trigger of %s on partition %d, want %d (CRC32)", cust, r.Partition, want)
			}
			if headers(r)[processor.HeaderKind] == string(schemas.KindErased) {
				erased = true
			} else {
				seen[cust] = true
			}
		}
	}
	if len(seen) != len(recs) || !erased {
		t.Errorf("triggers for %d of %d customers, erased record %v", len(seen), len(recs), erased)
	}
	// The stats follow the commit that the reader saw.
	for end := time.Now().Add(10 * time.Second); proc.Stats().Erasures == 0 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if st := proc.Stats(); st.DeadLetters != 0 || st.Erasures != 1 {
		t.Errorf("dead letters %d (want 0: nothing is misrouted), erasures %d (want 1)", st.DeadLetters, st.Erasures)
	}
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

// readDeadLetters reads the committed dead letters until want have come
// and a second has passed without more, or 60 s.
func readDeadLetters(t *testing.T, c *harness.Cluster, topic string, want int) []*kgo.Record {
	t.Helper()
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		wait := time.Second
		if len(out) < want {
			wait = time.Until(deadline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		recs := fs.Records()
		out = append(out, recs...)
		if len(recs) == 0 && len(out) >= want {
			break
		}
	}
	return out
}
