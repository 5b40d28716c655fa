package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/triggerd/triggerd/cmd/triggerd/backtest"
	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// BenchmarkBacktest measures "triggerd backtest" on the benchmark's backlog
// (the shop workload with every kind and the attributes, BENCH_EVENTS
// events over BENCH_SPAN up to now, BENCH_PARTITIONS partitions, in JSON:
// the backtest reads JSON inputs) with the example rules as baseline and
// candidate: the copy of the retained inputs and each side's replay, in
// events/s (backtest_copy_ev/s, backtest_replay_ev/s) and CPU.
// BENCH_BACKTEST_EVENTS overrides the backlog's size.
//
//	make bench BENCH=Backtest
func BenchmarkBacktest(b *testing.B) {
	s := loadSettings(b)
	events := envInt(b, "BENCH_BACKTEST_EVENTS", s.events)
	c := harness.NewCluster(b)
	cfg := c.Topics(b, s.partitions)
	cfg.Lateness = s.lateness
	p := harness.NewProducer(b, c, cfg, nil)
	wc := workload.DefaultConfig()
	wc.Customers, wc.AllKinds, wc.Attributes = s.customers, true, true
	gen := workload.New(wc)
	now := time.Now()
	start := now.Add(-s.span)
	batch := make([]schemas.Event, 0, 5000)
	for i := 0; i < events; i++ {
		var ev schemas.Event
		gen.Next(start.Add(time.Duration(i)*s.span/time.Duration(events)), &ev)
		batch = append(batch, ev)
		if len(batch) == cap(batch) || i == events-1 {
			p.Send(s.partitions, batch...)
			batch = batch[:0]
		}
	}
	rs, err := rules.ExampleSet()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	log, _ := zap.NewProduction()
	b.ResetTimer()
	rep, err := backtest.Run(ctx, backtest.Options{Source: cfg, Baseline: rs, Candidate: rs, From: start, To: now,
		Log: log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), Progress: testWriter{b}, ProgressEvery: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if rep.Baseline.Triggers != rep.Candidate.Triggers || rep.Differences.Customers != 0 {
		b.Errorf("the same rules on both sides differ: %d vs %d triggers, %d customers", rep.Baseline.Triggers, rep.Candidate.Triggers, rep.Differences.Customers)
	}
	replay := (rep.Baseline.Cost.EventsPerSecond + rep.Candidate.Cost.EventsPerSecond) / 2
	cpuPerEvent := 1e6 * rep.Baseline.Cost.CPUSeconds / float64(max(1, rep.Baseline.Cost.Events))
	b.ReportMetric(rep.Replay.Copy.EventsPerSecond, "backtest_copy_ev/s")
	b.ReportMetric(replay, "backtest_replay_ev/s")
	b.ReportMetric(cpuPerEvent, "backtest_cpu_us/ev")
	fmt.Printf("backtest: events=%d triggers=%d copy=%.0f ev/s replay=%.0f ev/s per side cpu=%.1f µs/event total=%.1fs\n",
		rep.Replay.Total.Events, rep.Baseline.Triggers, rep.Replay.Copy.EventsPerSecond, replay, cpuPerEvent, rep.Replay.Total.WallSeconds)
}

// testWriter sends the backtest's progress lines to the benchmark's log.
type testWriter struct{ b *testing.B }

func (w testWriter) Write(p []byte) (int, error) {
	w.b.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
