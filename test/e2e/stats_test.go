package e2e

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestStatsCountCommittedCycles holds the first cycle at its commit (the
// "before-end" failpoint): its records are polled and processed, but not
// committed, so neither Stats nor triggerd_input_events_total may count
// them yet. Once the cycle commits, both count every record. (Counted when
// queued, they ran ahead of the commit, and a test waiting on Stats read
// the logs of records the rules had not seen.)
func TestStatsCountCommittedCycles(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 1
	cfg := c.Topics(t, parts)
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := func(phase string) {
		if phase == "before-end" {
			once.Do(func() {
				close(reached)
				<-release
			})
		}
	}
	metrics := prometheus.NewRegistry()
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil,
		processor.Options{Registerer: metrics, Failpoint: hold})
	p := harness.NewProducer(t, c, cfg, nil)
	at := time.Now().UTC().Add(-time.Hour)
	p.Send(parts, click("s1", "counted", schemas.AddToCart, at, "p1"), click("s2", "counted", schemas.PageView, at.Add(time.Second), ""))
	p.Tick(parts, at.Add(time.Minute))

	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		close(release)
		t.Fatal("no cycle reached its commit within 60s")
	}
	held := proc.Stats().Events
	heldMetric := metric(t, metrics, "triggerd_input_events_total",
		map[string]string{"topic": cfg.Topics.Clickstream, "partition": "0"}).GetCounter().GetValue()
	close(release)
	if held != 0 || heldMetric != 0 {
		t.Errorf("before the first commit: Stats counted %d events and the counter %v, want 0 and 0", held, heldMetric)
	}

	// 2 events and the 3 inputs' ticks, all committed in the end.
	harness.WaitEvents(t, proc, 2+3*parts)
	if got := metric(t, metrics, "triggerd_input_events_total",
		map[string]string{"topic": cfg.Topics.Clickstream, "partition": "0"}).GetCounter().GetValue(); got != 3 {
		t.Errorf("after the commits the clickstream counter is %v, want 3 (2 events and a tick)", got)
	}
}
