package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/processor/rescale"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// BenchmarkRescale measures `triggerd rescale` (processor/rescale): a
// stopped deployment's changelog of BENCH_RESCALE_CUSTOMERS customers
// (default 1,000,000), each with a cart and every tenth with a pending
// timer, in 4 partitions, moved to 8. It reports the rate in customers per
// second (the summary line's rate), from the first read of the old
// changelog to the done marker, and the seconds per million customers.
//
//	make bench BENCH=Rescale
func BenchmarkRescale(b *testing.B) {
	customers := envInt(b, "BENCH_RESCALE_CUSTOMERS", 1_000_000)
	if customers <= 0 {
		b.Fatalf("BENCH_RESCALE_CUSTOMERS=%d: not a positive count", customers)
	}
	const from, to = 4, 8
	c := harness.NewCluster(b)
	var rate, secs float64
	for i := range b.N {
		b.StopTimer()
		cfg := c.Topics(b, from)
		writeChangelogParts(b, c, cfg, customers, from)
		b.StartTimer()
		res, err := rescale.Run(context.Background(), cfg, rescale.Options{To: to})
		if err != nil {
			b.Fatalf("rescale: %v", err)
		}
		if res.Customers != int64(customers) || res.Timers != int64((customers+9)/10) {
			b.Fatalf("rescale moved %d customers and %d timers, wrote %d and %d", res.Customers, res.Timers, customers, (customers+9)/10)
		}
		b.Logf("run %d: %s", i, res.Summary())
		rate += float64(res.Customers) / res.Elapsed.Seconds()
		secs += res.Elapsed.Seconds()
	}
	b.ReportMetric(float64(customers), "customers")
	b.ReportMetric(rate/float64(b.N), "customers/s")
	b.ReportMetric(secs/float64(b.N)*1e6/float64(customers), "s/million_customers")
}

// writeChangelogParts fills the changelog of cfg (created here, compacted,
// with parts partitions) the way the processor does, each customer on its
// partition under the default partitioner: a cart each, a pending timer
// for every tenth.
func writeChangelogParts(b *testing.B, c *harness.Cluster, cfg processor.Config, customers int, parts int32) {
	b.Helper()
	adm := kadm.NewClient(c.Client(b))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	if d, err := adm.ListTopics(ctx, cfg.Topics.Changelog); err == nil {
		if td, ok := d[cfg.Topics.Changelog]; ok && td.Err == nil {
			n = len(td.Partitions)
		}
	}
	if n == 0 {
		compact := "compact"
		resp, err := adm.CreateTopic(ctx, parts, 1, map[string]*string{"cleanup.policy": &compact}, cfg.Topics.Changelog)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			b.Fatalf("create changelog: %v", err)
		}
	} else if n != int(parts) {
		b.Fatalf("changelog %s has %d partitions, want %d", cfg.Topics.Changelog, n, parts)
	}
	sc := state.DefaultConfig()
	sc.Dir = b.TempDir()
	store, err := state.Open(sc, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	cl := c.Client(b, kgo.DefaultProduceTopic(cfg.Topics.Changelog), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 10_000
	for lo := 0; lo < customers; lo += batch {
		for i := lo; i < min(lo+batch, customers); i++ {
			id := schemas.CustomerID(fmt.Sprintf("c-%07d", i))
			sp := store.Partition(harness.PartitionOf(string(id), parts))
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
		for p := range parts {
			sp := store.Partition(p)
			sp.SetOffset(cfg.Topics.Clickstream, 0)
			var recs []*kgo.Record
			if err := sp.Changes(func(key, value []byte) error {
				recs = append(recs, &kgo.Record{Key: key, Value: value, Partition: p})
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			pctx, pcancel := context.WithTimeout(context.Background(), time.Minute)
			res := cl.ProduceSync(pctx, recs...)
			pcancel()
			if err := res.FirstErr(); err != nil {
				b.Fatalf("produce changelog: %v", err)
			}
			if err := sp.Commit(recs[len(recs)-1].Offset); err != nil {
				b.Fatal(err)
			}
		}
	}
}
