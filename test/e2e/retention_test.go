package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestInputDeletedWhileStopped: the broker deletes input records (retention,
// here DeleteRecords) that a stopped processor has not processed. On restart
// the state's next offset is below the log start: the processor must say so
// (the lost-records counter counts exactly the deleted, unprocessed records)
// and go on with what is left, never silently.
func TestInputDeletedWhileStopped(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1)
	cfg.IdleAdvance = true // clickstream alone drives event time
	store := memStore(t)
	p := harness.NewProducer(t, c, cfg, nil)
	t0 := time.Now().UTC().Add(-time.Hour)
	views := func(from, n int) []schemas.Event {
		var evs []schemas.Event
		for i := from; i < from+n; i++ {
			evs = append(evs, click(fmt.Sprintf("v%d", i), "c1", schemas.PageView, t0.Add(time.Duration(i)*time.Second), ""))
		}
		return evs
	}

	// Run 1 processes offsets 0..4, then stops cleanly.
	p.Send(1, views(0, 5)...)
	first := start(t, cfg, store)
	harness.WaitEvents(t, first.proc, 5)
	first.stop(t)

	// While it is stopped: offsets 5..14 arrive, and 5..9 are deleted.
	p.Send(1, views(5, 10)...)
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	del, err := adm.DeleteRecords(ctx, kadm.Offsets{cfg.Topics.Clickstream: {0: {Topic: cfg.Topics.Clickstream, Partition: 0, At: 10}}})
	if err == nil {
		err = del.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}

	// Run 2 resumes: it must count the 5 lost records and process 10..14.
	second := start(t, cfg, store)
	defer second.stop(t)
	harness.WaitEvents(t, second.proc, 5)
	lost := metric(t, second.reg, "triggerd_input_lost_records_total", map[string]string{"topic": cfg.Topics.Clickstream, "partition": "0"}).GetCounter().GetValue()
	if lost != 5 {
		t.Errorf("triggerd_input_lost_records_total = %v, want 5 (offsets 5..9 were deleted unprocessed)", lost)
	}
	t.Logf("retention: deleted=5 counted_lost=%v processed_after=%d", lost, second.proc.Stats().Events)
}
