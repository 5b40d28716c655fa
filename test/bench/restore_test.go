package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// BenchmarkRestore measures how fast a partition with many state records
// is restored from its changelog into an empty Pebble store on disk: the
// time a new instance (or one whose disk was lost) needs before it can
// process. The changelog holds BENCH_RESTORE_CUSTOMERS customer records
// (default 1,000,000), each with a cart, plus one pending timer for every
// tenth customer: the mix the cart rule leaves behind.
//
//	make bench BENCH=Restore
func BenchmarkRestore(b *testing.B) {
	customers := envInt(b, "BENCH_RESTORE_CUSTOMERS", 1_000_000)
	c := harness.NewCluster(b)
	cfg := c.Topics(b, 1)
	records := writeChangelog(b, c, cfg, customers)
	b.ResetTimer()
	var rate, secs float64
	for i := range b.N {
		n, r, s := restoreOnce(b, c, cfg, i)
		if n != int64(records) {
			b.Fatalf("restored %d changelog records, wrote %d", n, records)
		}
		rate += r
		secs += s
	}
	b.ReportMetric(float64(records), "records")
	b.ReportMetric(rate/float64(b.N), "records/s")
	b.ReportMetric(secs/float64(b.N), "s/restore")
}

// writeChangelog fills changelog partition 0 the way the processor does: a
// state partition (on a scratch store) changes customers and timers in
// batches, and each batch's coalesced changes are produced. It returns the
// number of changelog records.
func writeChangelog(b *testing.B, c *harness.Cluster, cfg processor.Config, customers int) int {
	compact := "compact"
	adm := kadm.NewClient(c.Client(b))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, cfg.Topics.Changelog)
	cancel()
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.Fatalf("create changelog: %v", err)
	}
	sc := state.DefaultConfig()
	sc.Dir = b.TempDir()
	store, err := state.Open(sc, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	sp := store.Partition(0)
	cl := c.Client(b, kgo.DefaultProduceTopic(cfg.Topics.Changelog), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	records, offset := 0, int64(-1)
	const batch = 10_000
	for lo := 0; lo < customers; lo += batch {
		for i := lo; i < min(lo+batch, customers); i++ {
			id := schemas.CustomerID(fmt.Sprintf("c-%07d", i))
			cu, err := sp.Customer(id)
			if err != nil {
				b.Fatal(err)
			}
			at := start.Add(time.Duration(i) * time.Second)
			cu.FirstSeen, cu.LastSeen, cu.Events = at, at, int64(3+i%40)
			cu.Cart.Items = append(cu.Cart.Items, schemas.Item{ProductID: fmt.Sprintf("p-%04d", i%5000), Quantity: 1,
				UnitPrice: schemas.Money{Minor: int64(500 + i%20000), Currency: "EUR"}})
			cu.Cart.UpdatedAt, cu.Cart.LastEvent = at, fmt.Sprintf("ev-%d", i)
			if i%10 == 0 {
				if err := sp.Schedule(schemas.Timer{Customer: id, ID: "cart_abandoned", Due: at.Add(time.Hour),
					Rule: "cart_abandoned", Stage: 1, Occurrence: cu.Cart.LastEvent}); err != nil {
					b.Fatal(err)
				}
			}
		}
		sp.SetOffset(cfg.Topics.Clickstream, int64(lo+batch))
		var recs []*kgo.Record
		if err := sp.Changes(func(key, value []byte) error {
			recs = append(recs, &kgo.Record{Key: key, Value: value, Partition: 0})
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res := cl.ProduceSync(ctx, recs...)
		cancel()
		if err := res.FirstErr(); err != nil {
			b.Fatalf("produce changelog: %v", err)
		}
		offset = recs[len(recs)-1].Offset
		records += len(recs)
		if err := sp.Commit(offset); err != nil {
			b.Fatal(err)
		}
	}
	return records
}

// restoreOnce starts a processor on an empty state directory and returns
// the records, rate and duration it logs for the restore of partition 0.
func restoreOnce(b *testing.B, c *harness.Cluster, cfg processor.Config, run int) (n int64, rate, secs float64) {
	sc := state.DefaultConfig()
	sc.Dir = b.TempDir()
	store, err := state.Open(sc, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rs, err := rules.CartOnly(time.Hour, 24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	cfg.Group = fmt.Sprintf("%s-restore-%d", cfg.Group, run)
	proc, err := processor.New(cfg, processor.Options{Logger: zap.New(core), Store: store, Rules: rs})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("processor: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		for _, e := range logs.FilterMessage("restored partition from changelog").All() {
			f := e.ContextMap()
			return f["records"].(int64), f["records_per_second"].(float64), f["seconds"].(float64)
		}
		if time.Now().After(deadline) {
			b.Fatalf("no restore finished within 10 minutes")
		}
		select {
		case err := <-done:
			b.Fatalf("processor stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
