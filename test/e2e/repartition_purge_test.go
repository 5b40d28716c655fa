package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRawInputPurged: the internal topic keeps records for good, so the
// stage deletes those the workers have committed past. After the workers
// have processed every raw record, each internal partition's log starts at
// the workers' committed offset (nothing they still need is gone, nothing
// they are done with is kept), and the processed records cannot be read
// back.
func TestRawInputPurged(t *testing.T) {
	c := harness.NewCluster(t)
	const parts, rawParts = 3, 4
	cfg := c.Topics(t, parts)
	cfg.IdleAdvance = true
	cfg.Repartition.PurgeInterval = 100 * time.Millisecond
	rawSetup(t, c, &cfg, rawParts)
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{})
	p := harness.NewProducer(t, c, cfg, nil)

	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range 40 {
		cust := fmt.Sprintf("purge-%02d", i)
		ev := click(fmt.Sprintf("pg%d", i), cust, schemas.AddToCart, t0.Add(time.Duration(i)*time.Millisecond), "p1")
		recs = append(recs, rawClick(t, p, cfg.Topics.Clickstream, ev, fmt.Sprintf("s-%d", i), int32(i)%rawParts))
	}
	if err := p.WriteRecords(recs...); err != nil {
		t.Fatal(err)
	}
	harness.WaitEvents(t, proc, int64(len(recs)))

	internal := cfg.RepartitionTopic(cfg.Topics.Clickstream)
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	purged := func() (bool, string) {
		committed, err := adm.FetchOffsetsForTopics(ctx, cfg.Group, internal)
		if err != nil {
			return false, err.Error()
		}
		starts, err := adm.ListStartOffsets(ctx, internal)
		if err != nil {
			return false, err.Error()
		}
		var moved int64
		for part := range int32(parts) {
			o, ok := committed.Lookup(internal, part)
			s, ok2 := starts.Lookup(internal, part)
			if !ok || !ok2 || o.Err != nil || s.Err != nil {
				return false, fmt.Sprintf("partition %d: no committed or start offset yet", part)
			}
			if s.Offset != o.At {
				return false, fmt.Sprintf("partition %d: log starts at %d, the workers committed %d", part, s.Offset, o.At)
			}
			moved += s.Offset
		}
		if moved < int64(len(recs)) {
			return false, fmt.Sprintf("%d records deleted, want at least the %d processed", moved, len(recs))
		}
		return true, ""
	}
	var why string
	for ok := false; !ok; {
		if ok, why = purged(); ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("internal topic not purged: %s", why)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// What is gone cannot be read back: a consumer from the start finds
	// nothing before the purged offsets.
	cl := c.Client(t, kgo.ConsumeTopics(internal), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	pollCtx, pollCancel := context.WithTimeout(ctx, time.Second)
	defer pollCancel()
	if n := cl.PollFetches(pollCtx).NumRecords(); n != 0 {
		t.Errorf("%d processed records still readable in the internal topic after the purge", n)
	}
}
