package harness

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
)

// FiredTrigger is what a downstream sender sees of one trigger.
type FiredTrigger struct {
	ID, HeaderID string
	Customer     string
	Kind         string
	Stage        int32
	Channel      string
	Due          time.Time
}

// TriggerReader reads committed triggers (read_committed), as a downstream
// sender must.
type TriggerReader struct {
	t   testing.TB
	cl  *kgo.Client
	dec *schemas.TriggerDecoder
}

func NewTriggerReader(t testing.TB, c *Cluster, topic string, f schemas.Format, reg *sr.Client) *TriggerReader {
	dec, err := schemas.NewTriggerDecoder(f, reg)
	if err != nil {
		t.Fatal(err)
	}
	return &TriggerReader{t: t, dec: dec, cl: c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))}
}

// Read collects triggers until want have arrived and then quiet has passed
// with none, or until timeout. Reading on after the expected count is what
// lets a test see a duplicate or an unexpected trigger.
func (r *TriggerReader) Read(want int, quiet, timeout time.Duration) []FiredTrigger {
	r.t.Helper()
	var out []FiredTrigger
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		wait := quiet
		if len(out) < want {
			wait = time.Until(deadline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fetches := r.cl.PollFetches(ctx)
		cancel()
		recs := fetches.Records()
		for _, rec := range recs {
			var tr schemas.Trigger
			if err := r.dec.Decode(rec.Value, &tr); err != nil {
				r.t.Fatalf("undecodable trigger: %v", err)
			}
			ft := FiredTrigger{ID: tr.ID, Customer: string(tr.Customer), Kind: tr.Kind, Stage: tr.Stage,
				Channel: string(tr.Channel), Due: tr.DueAt}
			for _, h := range rec.Headers {
				if h.Key == processor.HeaderTriggerID {
					ft.HeaderID = string(h.Value)
				}
			}
			if string(rec.Key) != ft.Customer {
				r.t.Errorf("trigger %s keyed %q, want the customer ID %q", ft.ID, rec.Key, ft.Customer)
			}
			out = append(out, ft)
		}
		if len(recs) == 0 && len(out) >= want {
			break
		}
	}
	return out
}
