package state

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

// BenchmarkBatch is the processor's hot path against the store: batches of
// 1,000 events over 100k customers with Zipf-skewed keys; per event a
// read-modify-write of the customer, a Schedule (a new or moved timer) and a
// Cancel; per batch a PopDue, Changes and Commit. One op is one batch.
func BenchmarkBatch(b *testing.B) {
	const (
		customers = 100_000
		perBatch  = 1_000
	)
	cfg := testConfig(vfs.NewMem())
	cfg.CacheBytes = 256 << 20
	cfg.MemTableBytes = 64 << 20
	s, err := Open(cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := s.Partition(0)

	ids := make([]schemas.CustomerID, customers)
	for i := range ids {
		ids[i] = schemas.CustomerID(fmt.Sprintf("customer-%06d", i))
	}
	// Load every customer once, so reads hit real records.
	for i, id := range ids {
		c, err := p.Customer(id)
		if err != nil {
			b.Fatal(err)
		}
		c.Events = 1
		c.FirstSeen = time.UnixMilli(int64(i))
		c.Profile.TimeZone = "Europe/Berlin"
		if (i+1)%10_000 == 0 {
			if err := p.Commit(-1); err != nil {
				b.Fatal(err)
			}
		}
	}

	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, customers-1)
	item := schemas.Item{ProductID: "sku-123", Quantity: 1, UnitPrice: schemas.Money{Minor: 1999, Currency: "EUR"}}
	timerIDs := [2]string{"cart_abandoned", "browse_abandoned"}
	causedBy := []string{"evt"}
	var due []schemas.Timer
	now := time.UnixMilli(1_700_000_000_000)
	changes := 0
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		for e := range perBatch {
			id := ids[zipf.Uint64()]
			c, err := p.Customer(id)
			if err != nil {
				b.Fatal(err)
			}
			c.Events++
			c.LastSeen = now
			if len(c.Cart.Items) < 5 {
				c.Cart.Items = append(c.Cart.Items, item)
			} else {
				c.Cart.Items = c.Cart.Items[:0]
			}
			c.Cart.UpdatedAt = now
			now = now.Add(time.Millisecond)
			err = p.Schedule(schemas.Timer{
				Customer: id, ID: timerIDs[e%2], Due: now.Add(30 * time.Second),
				Rule: "cart", Stage: 1, Occurrence: "evt", CausedBy: causedBy,
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Cancel(id, timerIDs[(e+1)%2]); err != nil {
				b.Fatal(err)
			}
		}
		if due, err = p.PopDue(now, 0, due[:0]); err != nil {
			b.Fatal(err)
		}
		if err := p.Changes(func(k, v []byte) error { changes++; return nil }); err != nil {
			b.Fatal(err)
		}
		if err := p.Commit(int64(n)); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N*perBatch)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(changes)/float64(b.N), "changes/batch")
}

// BenchmarkRestore applies a changelog to an empty store on disk, flushing
// every 20,000 records as the processor does: customers each with a cart
// and one pending timer (the state the workload benchmark seeds), a tenth
// of the timers moved later in the changelog. One op is one record.
func BenchmarkRestore(b *testing.B) {
	type rec struct{ k, v []byte }
	const customers = 100_000
	src, err := Open(testConfig(vfs.NewMem()), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	sp := src.Partition(0)
	var log []rec
	due := time.UnixMilli(1_700_000_000_000)
	flush := func() {
		if err := sp.Changes(func(k, v []byte) error {
			log = append(log, rec{append([]byte(nil), k...), append([]byte(nil), v...)})
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if err := sp.Commit(int64(len(log))); err != nil {
			b.Fatal(err)
		}
	}
	for i := range customers + customers/10 {
		id := schemas.CustomerID(fmt.Sprintf("customer-%08d", i%customers))
		c, err := sp.Customer(id)
		if err != nil {
			b.Fatal(err)
		}
		c.Events++
		c.Cart.Items = append(c.Cart.Items, schemas.Item{ProductID: "sku-1", Quantity: 1, UnitPrice: schemas.Money{Minor: 999, Currency: "EUR"}})
		if err := sp.Schedule(schemas.Timer{Customer: id, ID: "cart_abandoned", Due: due.Add(time.Duration(i) * time.Millisecond),
			Rule: "cart_abandoned", Stage: 1, Occurrence: "o"}); err != nil {
			b.Fatal(err)
		}
		if (i+1)%5000 == 0 {
			flush()
		}
	}
	flush()
	if err := src.Close(); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	start := time.Now()
	applied := 0
	for n := 0; n < b.N; {
		b.StopTimer()
		cfg := DefaultConfig()
		cfg.Dir = b.TempDir()
		s, err := Open(cfg, zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
		p := s.Partition(0)
		b.StartTimer()
		for i := 0; i < len(log) && n < b.N; i, n = i+1, n+1 {
			if err := p.ApplyChangelog(log[i].k, log[i].v, int64(i)); err != nil {
				b.Fatal(err)
			}
			if (i+1)%20_000 == 0 {
				if err := p.FlushRestore(); err != nil {
					b.Fatal(err)
				}
			}
			applied++
		}
		if err := p.FlushRestore(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(applied)/time.Since(start).Seconds(), "records/s")
}
