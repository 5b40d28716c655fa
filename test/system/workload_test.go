package system

import (
	"os"
	"testing"
	"time"

	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// needBroker fails the test when no real broker is named: the system tests
// exist to prove the guarantees on Apache Kafka, and kfake never stands in.
func needBroker(t *testing.T) {
	t.Helper()
	if os.Getenv("TRIGGERD_KAFKA_BROKERS") == "" {
		t.Fatal("system tests need a real Apache Kafka broker in TRIGGERD_KAFKA_BROKERS: run make test-system")
	}
}

// workloadSpec is a deterministic workload: n events of the shared
// generator, spaced evenly in event time from start, with heartbeats on
// every input partition every heartbeatEvery events so that event time
// advances on every input (the processor runs with idle_advance off).
type workloadSpec struct {
	seed           uint64
	events         int
	customers      int
	start          time.Time
	spacing        time.Duration
	heartbeatEvery int
	rate           int // events per second of wall time the producer paces to; 0 = as fast as it can
}

// end is the event time of the last event.
func (w workloadSpec) end() time.Time { return w.start.Add(time.Duration(w.events-1) * w.spacing) }

// produce writes the workload and returns the model's view of it: every
// customer's events.
func (w workloadSpec) produce(t *testing.T, p *harness.Producer, parts int32) map[schemas.CustomerID][]modelEvent {
	wc := workload.DefaultConfig()
	wc.Seed, wc.Customers = w.seed, w.customers
	gen := workload.New(wc)
	model := map[schemas.CustomerID][]modelEvent{}
	batch := make([]schemas.Event, 0, 1000)
	began := time.Now()
	for i := range w.events {
		if w.rate > 0 && i%1000 == 0 {
			// Pace the workload so the processor works through it
			// over many cycles while it is being killed.
			time.Sleep(time.Until(began.Add(time.Duration(i) * time.Second / time.Duration(w.rate))))
		}
		at := w.start.Add(time.Duration(i) * w.spacing)
		var ev schemas.Event
		gen.Next(at, &ev)
		batch = append(batch, ev)
		model[ev.Customer] = append(model[ev.Customer], modelEvent{
			source: ev.Source, seq: i, id: ev.ID, typ: ev.Type, at: ev.Time, prod: ev.ProductID, qty: ev.Quantity,
		})
		if len(batch) == cap(batch) || i == w.events-1 {
			p.Send(parts, batch...)
			batch = batch[:0]
		}
		if (i+1)%w.heartbeatEvery == 0 {
			p.Send(parts, batch...)
			batch = batch[:0]
			p.Tick(parts, at)
		}
	}
	return model
}
