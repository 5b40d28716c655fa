package system

import (
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	heartbeatEvery int // 0: none
	rate           int // events per second of wall time the producer paces to; 0 = as fast as it can
	// live stamps each event with the wall clock as it is generated,
	// just before it is written (start and spacing are not used).
	live bool
	// heartbeat, if set, writes the heartbeats in place of a tick on
	// every input partition (p.WriteTick).
	heartbeat func(at time.Time) error
}

// end is the event time of the last event.
func (w workloadSpec) end() time.Time { return w.start.Add(time.Duration(w.events-1) * w.spacing) }

// poison is a corrupt or invalid record written after a workload event,
// with the dead-letter reason the checker expects for it.
type poison struct {
	source    schemas.Source
	key       string
	value     []byte
	timestamp time.Time
	reason    string
}

// produce writes the workload and returns the model's view of it: every
// customer's events. extra, if set, returns poison records to write after
// an event, to the same partition. It runs on its own goroutine, so it
// returns errors rather than failing the test.
func (w workloadSpec) produce(p *harness.Producer, parts int32, extra func(*schemas.Event) []poison) (map[schemas.CustomerID][]modelEvent, error) {
	wc := workload.DefaultConfig()
	wc.Seed, wc.Customers = w.seed, w.customers
	gen := workload.New(wc)
	model := map[schemas.CustomerID][]modelEvent{}
	batch := make([]schemas.Event, 0, 1000)
	var bad []*kgo.Record
	flush := func() error {
		if err := p.Write(parts, batch...); err != nil {
			return err
		}
		batch = batch[:0]
		if len(bad) > 0 {
			if err := p.WriteRecords(bad...); err != nil {
				return err
			}
			bad = bad[:0]
		}
		return nil
	}
	began := time.Now()
	for i := range w.events {
		if w.rate > 0 && i%1000 == 0 {
			// Pace the workload so the processor works through it
			// over many cycles while it is being disturbed.
			time.Sleep(time.Until(began.Add(time.Duration(i) * time.Second / time.Duration(w.rate))))
		}
		at := w.start.Add(time.Duration(i) * w.spacing)
		if w.live {
			// Milliseconds, as the encodings carry it: the model must
			// see the times the processor sees.
			at = time.Now().UTC().Truncate(time.Millisecond)
		}
		var ev schemas.Event
		gen.Next(at, &ev)
		batch = append(batch, ev)
		model[ev.Customer] = append(model[ev.Customer], modelEvent{
			source: ev.Source, seq: i, id: ev.ID, typ: ev.Type, at: ev.Time, prod: ev.ProductID, qty: ev.Quantity,
		})
		if extra != nil {
			for _, x := range extra(&ev) {
				bad = append(bad, &kgo.Record{
					Topic: p.Topic(x.source), Partition: harness.PartitionOf(x.key, parts),
					Key: []byte(x.key), Value: x.value, Timestamp: x.timestamp,
				})
			}
		}
		if len(batch) == cap(batch) || i == w.events-1 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if w.heartbeatEvery > 0 && (i+1)%w.heartbeatEvery == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			write := func(at time.Time) error { return p.WriteTick(parts, at) }
			if w.heartbeat != nil {
				write = w.heartbeat
			}
			if err := write(at); err != nil {
				return nil, err
			}
		}
	}
	return model, nil
}
