package bench

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/schemas"
)

// runSaturated measures the end-to-end maximum rate: the workload is
// produced as fast as this process can for s.saturate, with event time =
// wall clock, while the processor runs, and the rate is the events
// produced over the time from the first produce until the processor has
// committed them all. Unlike a backlog drain it includes the cost of
// getting the events into Kafka on the same machine (the generator and the
// broker's produce path share the cores with the processor), so it is the
// rate the live phase's "half of the maximum" is taken from: half of a
// drain rate can be more than this machine ingests, and then latency only
// measures a growing queue.
func runSaturated(b *testing.B, s settings, k *cluster, reg *sr.Client, in inputs, group string, cpu func() time.Duration, alive func() error) float64 {
	w := newEventWriter(b, k, reg, in.topics, s.partitions)
	wc := workload.DefaultConfig()
	wc.Customers, wc.AllKinds, wc.Attributes, wc.Seed = s.customers, true, true, uint64(time.Now().UnixNano())
	gen := workload.New(wc)
	var ev schemas.Event
	m0 := sampleMachine(cpu, k.brokerPID)
	start := time.Now()
	end := start.Add(s.saturate)
	var produced int64
	for now := start; now.Before(end); now = time.Now() {
		if err := alive(); err != nil {
			b.Fatalf("processor died in the saturation phase: %v", err)
		}
		for range 1000 {
			gen.Next(now, &ev)
			w.write(&ev)
			produced++
		}
	}
	w.flush()
	drain(b, k, group, endOffsets(b, k, in.topics.Clickstream, in.topics.Transactions, in.topics.Profiles), cpu, alive, 30*time.Minute)
	secs := time.Since(start).Seconds()
	logf("%s: saturation: %d events produced in %s, all committed after %.1fs", k.name, produced, s.saturate, secs)
	logf("%s: saturation: %s", k.name, sampleMachine(cpu, k.brokerPID).sub(m0).split(k, "processor", produced))
	return float64(produced) / secs
}
