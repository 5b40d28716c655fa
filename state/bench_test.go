package state

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
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

// BenchmarkDrainAtScale is the processor's write pattern against a store
// that already holds many customers, to weigh the LSM's shape (compaction
// settings, compression) without Kafka: BENCH_STORE_SEED customers (default
// 1,000,000; the workload benchmark seeds 10,000,000), each with a cart and a
// timer, are written in 5,000-customer batches; then BENCH_STORE_EVENTS
// events (default 1,000,000) over 1,000,000 other customers, Zipf-skewed
// (s=1.1, like the workload), in 8,000-event batches over 12 partitions. Per
// event: a read-modify-write of the customer that grows three sliding
// windows (capped at 80 entries) and the dedupe window; a tenth schedule a
// timer, a fifth cancel one. It reports the process's CPU per event, which
// counts Pebble's flushes and compactions, and the store's figures for the
// drain. It shares the seeded customers with test/bench's seedState (the
// same records, without Kafka). One op is the whole run (-benchtime=1x).
func BenchmarkDrainAtScale(b *testing.B) {
	const (
		partitions = 12
		seedBatch  = 5000
		cycle      = 8000
		windowCap  = 80
	)
	seedN := benchEnv(b, "BENCH_STORE_SEED", 1_000_000)
	events := benchEnv(b, "BENCH_STORE_EVENTS", 1_000_000)
	cfg := DefaultConfig()
	cfg.Dir = b.TempDir()
	s, err := Open(cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ps := make([]*Partition, partitions)
	for i := range ps {
		ps[i] = s.Partition(int32(i))
	}
	partitionOf := func(id schemas.CustomerID) int { return int(schemas.EventKey(string(id)) % partitions) }
	offset := int64(0)
	commit := func(p *Partition) {
		if err := p.Changes(func(k, v []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
		offset++
		if err := p.Commit(offset); err != nil {
			b.Fatal(err)
		}
	}

	now := time.Now().UTC().Truncate(time.Second)
	pending := make([]int, partitions)
	for i := range seedN {
		id := schemas.CustomerID(fmt.Sprintf("s-%08d", i))
		p := partitionOf(id)
		c, err := ps[p].Customer(id)
		if err != nil {
			b.Fatal(err)
		}
		at := now.Add(-time.Duration(i%86400) * time.Second)
		c.FirstSeen, c.LastSeen, c.Events = at, at, int64(3+i%40)
		c.Cart.Items = append(c.Cart.Items, schemas.Item{ProductID: fmt.Sprintf("p-%d", i%500), Quantity: 1,
			UnitPrice: schemas.Money{Minor: int64(500 + i%20000), Currency: "EUR"}})
		c.Cart.UpdatedAt, c.Cart.LastEvent = at, fmt.Sprintf("seed-%d", i)
		if err := ps[p].Schedule(schemas.Timer{Customer: id, ID: "cart_abandoned", Due: now.Add(30 * 24 * time.Hour),
			Rule: "cart_abandoned", Stage: 1, Occurrence: c.Cart.LastEvent}); err != nil {
			b.Fatal(err)
		}
		if pending[p]++; pending[p] == seedBatch {
			commit(ps[p])
			pending[p] = 0
		}
	}
	for _, p := range ps {
		commit(p)
	}

	ids := make([]schemas.CustomerID, 1_000_000)
	for i := range ids {
		ids[i] = schemas.CustomerID(fmt.Sprintf("c-%06d", i))
	}
	keys := make([]string, 997)
	for i := range keys {
		keys[i] = fmt.Sprintf("sku-%05d", i*7)
	}
	seen := [...]schemas.EventType{"page_view", "product_view", "add_to_cart", "remove_from_cart", "purchase", "coupon_viewed"}
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(len(ids)-1))
	item := schemas.Item{ProductID: "sku-123", Quantity: 1, UnitPrice: schemas.Money{Minor: 1999, Currency: "EUR"}}
	before, _ := s.Metrics()
	cpu0 := processCPU(b)
	b.ResetTimer()
	start := time.Now()
	at := now
	for e := range events {
		id := ids[zipf.Uint64()]
		p := ps[partitionOf(id)]
		c, err := p.Customer(id)
		if err != nil {
			b.Fatal(err)
		}
		if c.FirstSeen.IsZero() {
			c.FirstSeen = at
			c.Profile.TimeZone, c.Profile.Country = "Europe/Berlin", "DE"
			c.Aggregates = append(c.Aggregates, schemas.Aggregate{Name: "views_1h"},
				schemas.Aggregate{Name: "spend_24h"}, schemas.Aggregate{Name: "categories_7d"})
		}
		c.Events++
		c.LastSeen = at
		c.Recent = append(c.Recent, schemas.SeenEvent{Key: rng.Uint64(), At: at})
		if len(c.Recent) > 20 {
			c.Recent = c.Recent[1:]
		}
		typ, found := seen[e%len(seen)], false
		for i := range c.Seen {
			if c.Seen[i].Type == typ {
				c.Seen[i].At, found = at, true
			}
		}
		if !found {
			c.Seen = append(c.Seen, schemas.TypeSeen{Type: typ, At: at})
		}
		for i := range c.Aggregates {
			if i == 1 && e%4 != 0 { // spend: purchases only
				continue
			}
			w := &c.Aggregates[i]
			w.Entries = append(w.Entries, schemas.AggEntry{At: at, Value: int64(e % 5000), Key: keys[e%len(keys)]})
			if len(w.Entries) > windowCap {
				w.Entries = w.Entries[1:]
			}
		}
		switch e % 10 {
		case 0:
			if err := p.Schedule(schemas.Timer{Customer: id, ID: "cart_abandoned", Due: at.Add(30 * time.Minute),
				Rule: "cart_abandoned", Stage: 1, Occurrence: "o"}); err != nil {
				b.Fatal(err)
			}
			c.Cart.Items = append(c.Cart.Items, item)
		case 1, 2:
			if err := p.Cancel(id, "cart_abandoned"); err != nil {
				b.Fatal(err)
			}
			c.Cart.Items = c.Cart.Items[:0]
		}
		at = at.Add(time.Millisecond)
		if (e+1)%cycle == 0 {
			for _, p := range ps {
				commit(p)
			}
		}
	}
	for _, p := range ps {
		commit(p)
	}
	elapsed, cpu := time.Since(start), processCPU(b)-cpu0
	b.StopTimer()
	after, _ := s.Metrics()
	var compacted uint64
	for i := range after.Levels {
		compacted += after.Levels[i].TableBytesCompacted - before.Levels[i].TableBytesCompacted
	}
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(events), "cpu_µs/event")
	b.ReportMetric(float64(after.WAL.BytesWritten-before.WAL.BytesWritten)/float64(events), "WAL_B/event")
	b.ReportMetric(float64(compacted)/(1<<20), "compacted_MB")
	b.ReportMetric((after.Compact.Duration - before.Compact.Duration).Seconds(), "compaction_s")
	var lsm strings.Builder
	for i := range after.Levels {
		if n := after.Levels[i].TablesSize; n > 0 {
			fmt.Fprintf(&lsm, " L%d %d MB", i, n>>20)
		}
	}
	b.Logf("seeded %d customers, drained %d events; LSM at the end:%s; compaction debt %d MB",
		seedN, events, lsm.String(), after.Compact.EstimatedDebt>>20)
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchEnv reads a positive size from the environment, or def.
func benchEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
