package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// TestDeadLetter mixes bad records into good traffic: each bad one reaches
// the dead-letter topic with its reason and origin, and the good ones after
// it are still processed (the partition keeps flowing).
func TestDeadLetter(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 1
	cfg := c.Topics(t, parts)
	// Live mode: the idle inputs (transactions, profiles) advance with the
	// wall clock, so the clickstream records need not wait for them.
	cfg.IdleAdvance = true
	proc := harness.RunProcessor(t, cfg, harness.CartRules(t), nil)
	p := harness.NewProducer(t, c, cfg, nil)

	t0 := time.Now().UTC().Add(-time.Hour)
	raw := func(key, value string) *kgo.Record {
		return &kgo.Record{Topic: cfg.Topics.Clickstream, Key: []byte(key), Value: []byte(value), Timestamp: t0}
	}
	good := `{"event_id":"g%d","customer_id":"c1","event_time":%d,"type":"page_view"}`
	bad := map[string]*kgo.Record{
		"invalid_json":        raw("c1", "{not json"),
		"bad_field":           raw("c1", fmt.Sprintf(`{"event_id":"x4","customer_id":"c1","event_time":%d,"type":"add_to_cart","quantity":1}`, t0.UnixMilli())),
		"missing_customer_id": raw("c1", fmt.Sprintf(`{"event_id":"x1","event_time":%d,"type":"page_view"}`, t0.UnixMilli())),
		"missing_event_id":    raw("c1", fmt.Sprintf(`{"customer_id":"c1","event_time":%d,"type":"page_view"}`, t0.UnixMilli())),
		"key_mismatch":        raw("someone-else", fmt.Sprintf(`{"event_id":"x2","customer_id":"c1","event_time":%d,"type":"page_view"}`, t0.UnixMilli())),
		"absurd_timestamp":    raw("c1", fmt.Sprintf(`{"event_id":"x3","customer_id":"c1","event_time":%d,"type":"page_view"}`, t0.AddDate(5, 0, 0).UnixMilli())),
	}
	var recs []*kgo.Record
	reasons := make([]string, 0, len(bad))
	for reason, r := range bad {
		reasons = append(reasons, reason)
		recs = append(recs, r, raw("c1", fmt.Sprintf(good, len(recs), t0.UnixMilli())))
	}
	sort.Strings(reasons)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	harness.WaitEvents(t, proc, int64(len(recs)))

	dlq := c.Client(t, kgo.ConsumeTopics(cfg.Topics.DeadLetter), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(bad) && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
		fs := dlq.PollFetches(pctx)
		pcancel()
		for _, r := range fs.Records() {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h["dlq_source_topic"] != cfg.Topics.Clickstream || h["dlq_source_partition"] != "0" || h["dlq_source_offset"] == "" || h["dlq_error"] == "" {
				t.Errorf("dead letter %q lacks its origin: %v", h["dlq_reason"], h)
			}
			if want := bad[h["dlq_reason"]]; want == nil || string(want.Value) != string(r.Value) {
				t.Errorf("dead letter with reason %q carries %q", h["dlq_reason"], r.Value)
			}
			got = append(got, h["dlq_reason"])
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(reasons, ",") {
		t.Errorf("dead-letter reasons:\n got %v\nwant %v", got, reasons)
	}
	if st := proc.Stats(); st.DeadLetters != int64(len(bad)) {
		t.Errorf("processor counted %d dead letters, want %d", st.DeadLetters, len(bad))
	}
}

// TestCopartitionCheck starts the processor on inputs with different
// partition counts: it must refuse, naming the topics and their counts.
func TestCopartitionCheck(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 2)
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := adm.DeleteTopic(ctx, cfg.Topics.Profiles); err != nil {
		t.Fatal(err)
	}
	// Deleting is asynchronous on a real broker: retry the create.
	for {
		resp, err := adm.CreateTopic(ctx, 3, 1, nil, cfg.Topics.Profiles)
		if err == nil && resp.Err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("recreating %s: %v %v", cfg.Topics.Profiles, err, resp.Err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	harness.WaitTopics(t, ctx, adm, 3, cfg.Topics.Profiles)
	sc := state.DefaultConfig()
	sc.Dir, sc.FS = "state", vfs.NewMem()
	store, err := state.Open(sc, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rs := harness.CartRules(t)
	proc, err := processor.New(cfg, processor.Options{Logger: zaptest.NewLogger(t), Store: store, Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	err = proc.Run(ctx)
	var cpe *processor.CopartitionError
	if !errors.As(err, &cpe) {
		t.Fatalf("Run() = %v, want a CopartitionError", err)
	}
	for _, want := range []string{cfg.Topics.Clickstream + "=2", cfg.Topics.Transactions + "=2", cfg.Topics.Profiles + "=3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
