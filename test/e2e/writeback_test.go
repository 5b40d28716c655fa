package e2e

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// TestWriteBackMetric: triggerd_store_write_back_bytes is what the state
// store holds out of Pebble. With no write-back due yet, that is each
// customer's last changelog record, byte for byte, which the test reads back
// from the changelog topic.
func TestWriteBackMetric(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1)
	sc := state.DefaultConfig()
	sc.Dir, sc.FS = "state", vfs.NewMem()
	sc.WriteBackCommits = 1000
	store, err := state.Open(sc, zaptest.NewLogger(t).Named("state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := start(t, cfg, store)
	at := time.Now().UTC().Add(-time.Hour)
	p := harness.NewProducer(t, c, cfg, nil)
	p.Send(1,
		click("e1", "c1", schemas.AddToCart, at, "p1"),
		click("e2", "c2", schemas.AddToCart, at.Add(time.Second), "p2"),
		click("e3", "c1", schemas.AddToCart, at.Add(2*time.Second), "p3"))
	// A tick on every input moves event time past the clicks, which the
	// processor holds until then.
	p.Tick(1, at.Add(time.Minute))
	harness.WaitEvents(t, r.proc, 3+3)

	// The last value of every customer key in the changelog.
	last := map[string]int{}
	readChangelog(t, c, cfg.Topics.Changelog, func(rec *kgo.Record) {
		if len(rec.Key) > 0 && rec.Key[0] == 'c' {
			last[string(rec.Key)] = len(rec.Value)
		}
	})
	want := 0
	for _, n := range last {
		want += n
	}
	if last["cc1"] == 0 || last["cc2"] == 0 {
		t.Fatalf("changelog customer records %v: want c1 and c2 (and the ticks' customer)", last)
	}
	got := metric(t, r.reg, "triggerd_store_write_back_bytes", map[string]string{"partition": "0"}).GetGauge().GetValue()
	if got != float64(want) {
		t.Errorf("triggerd_store_write_back_bytes = %v, the customers' last changelog records are %d bytes", got, want)
	}
}
