package e2e

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRawInputBadFieldsDeadLetteredByWorker: the repartition stage reads
// only a raw record's customer ID, so a record whose customer ID is fine
// but whose other fields are bad passes the stage. Each such record must
// reach its customer's worker through the internal topic and be
// dead-lettered there, with the full decoder's reason and the raw value and
// headers, and nothing of it applied; a record that is not JSON is still
// dead-lettered by the stage, though its customer ID comes first. Nothing
// is lost: every raw record is a trigger's event or a dead letter.
func TestRawInputBadFieldsDeadLetteredByWorker(t *testing.T) {
	c := harness.NewCluster(t)
	const parts, rawParts = 4, 3
	cfg := c.Topics(t, parts)
	cfg.IdleAdvance = true
	cfg.Repartition.PurgeInterval = time.Hour // the internal topic is read whole below
	rawSetup(t, c, &cfg, rawParts)
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{})
	p := harness.NewProducer(t, c, cfg, nil)
	reader := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil)

	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Millisecond)
	at := `"` + t0.Format(time.RFC3339Nano) + `"`
	var recs []*kgo.Record
	var want []string
	for i := range 3 {
		cust := fmt.Sprintf("raw-good-%d", i)
		ev := click(fmt.Sprintf("good%d", i), cust, schemas.AddToCart, t0.Add(time.Duration(i)*time.Millisecond), "p1")
		recs = append(recs, rawClick(t, p, cfg.Topics.Clickstream, ev, fmt.Sprintf("session-%d", i), int32(i)%rawParts))
		want = append(want, cust+"/1")
	}
	raw := func(trace string, part int32, value string) *kgo.Record {
		return &kgo.Record{Topic: cfg.Topics.Clickstream, Partition: part, Key: []byte("session-" + trace), Value: []byte(value),
			Timestamp: t0, Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte(trace)}}}
	}
	// The worker's: the customer ID reads, another field does not.
	workerBad := map[string]struct{ customer, reason string }{
		"no-event-id":   {"raw-bad-1", schemas.ReasonMissingEventID},
		"bad-time":      {"raw-bad-2", schemas.ReasonBadField},
		"quantity-type": {"raw-bad-3", schemas.ReasonBadField},
	}
	bad := []*kgo.Record{
		raw("no-event-id", 0, `{"customer_id":"raw-bad-1","event_time":`+at+`,"type":"add_to_cart","product_id":"p1","quantity":1}`),
		raw("bad-time", 1, `{"event_id":"bf2","customer_id":"raw-bad-2","event_time":"yesterday","type":"add_to_cart","product_id":"p1","quantity":1}`),
		raw("quantity-type", 2, `{"event_id":"bf3","customer_id":"raw-bad-3","event_time":`+at+`,"type":"add_to_cart","product_id":"p1","quantity":"2"}`),
		// The stage's: not JSON, whatever comes first.
		raw("cut-short", 0, `{"customer_id":"raw-bad-4","event_id":"bf4","event_time":`),
	}
	if err := p.WriteRecords(append(recs, bad...)...); err != nil {
		t.Fatal(err)
	}
	// Events counts the records the workers consumed, dead-lettered ones
	// included: every record of the internal topic.
	harness.WaitEvents(t, proc, int64(len(recs)+len(workerBad)))
	// Only the good carts fire: raw-bad-1's add_to_cart, were it applied,
	// would fire too.
	sort.Strings(want)
	checkTriggers(t, reader.Read(len(want), 2*time.Second, 60*time.Second), want)

	internal := cfg.RepartitionTopic(cfg.Topics.Clickstream)
	keys := map[string]string{} // trace -> key in the internal topic
	readTopic(t, c, internal, len(recs)+len(workerBad), func(r *kgo.Record) {
		keys[headers(r)["trace"]] = string(r.Key)
	})
	for trace, b := range workerBad {
		if keys[trace] != b.customer {
			t.Errorf("%s: keyed %q in the internal topic, want its customer ID %q", trace, keys[trace], b.customer)
		}
	}
	if _, ok := keys["cut-short"]; ok {
		t.Errorf("a record that is not JSON reached the internal topic")
	}

	values := map[string]string{}
	for _, r := range bad {
		values[string(r.Headers[0].Value)] = string(r.Value)
	}
	dl := readDeadLetters(t, c, cfg.Topics.DeadLetter, len(bad))
	seen := map[string]bool{}
	for _, r := range dl {
		h := headers(r)
		trace := h["trace"]
		seen[trace] = true
		if string(r.Value) != values[trace] {
			t.Errorf("dead letter %q: value %q, the raw record's %q", trace, r.Value, values[trace])
		}
		if trace == "cut-short" {
			if h["dlq_reason"] != schemas.ReasonInvalidJSON || h["dlq_stage"] != "repartition" || h["dlq_source_topic"] != cfg.Topics.Clickstream {
				t.Errorf("dead letter of the cut-short record: %v; want invalid_json from the repartition stage", h)
			}
			continue
		}
		b, ok := workerBad[trace]
		switch {
		case !ok:
			t.Errorf("unexpected dead letter %v", h)
		case h["dlq_reason"] != b.reason || h["dlq_source_topic"] != internal || h["dlq_stage"] != "" || string(r.Key) != b.customer:
			t.Errorf("dead letter of %s: key %q, headers %v; want %s from the worker reading %s, keyed %s", trace, r.Key, h, b.reason, internal, b.customer)
		}
	}
	if len(dl) != len(bad) || len(seen) != len(bad) {
		t.Errorf("%d dead letters of %d records (%v), want each bad record once", len(dl), len(bad), seen)
	}
	// The counts follow the commits the dead letters came with.
	deadline := time.Now().Add(30 * time.Second)
	st := proc.Stats()
	for ; st.DeadLetters < int64(len(bad)) && time.Now().Before(deadline); st = proc.Stats() {
		time.Sleep(50 * time.Millisecond)
	}
	if st.Events != int64(len(recs)+len(workerBad)) || st.DeadLetters != int64(len(bad)) {
		t.Errorf("workers consumed %d records and %d were dead-lettered; want %d and %d", st.Events, st.DeadLetters, len(recs)+len(workerBad), len(bad))
	}
}
