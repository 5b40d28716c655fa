package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

// TestRestoreOnTopOfOlderState simulates a crash after the Kafka commit
// and before the Pebble apply: store B runs the same batches as store A, but
// loses batch k (Abort), catches up with A's changelog records of batch k,
// and goes on. From then on B must behave exactly as A.
//
// With customer records in write-back, B replays from the offset Pebble
// holds everything up to (Offsets.Persisted), as the processor's restore
// does, which may be some batches before k.
func TestRestoreOnTopOfOlderState(t *testing.T) {
	for _, writeBack := range []int{1, 3} {
		for k := 1; k < 12; k++ {
			for lost := 1; lost <= 3; lost++ {
				t.Run(fmt.Sprintf("writeback%d_from%d_lost%d", writeBack, k, lost), func(t *testing.T) { restoreOnTop(t, k, lost, writeBack) })
			}
		}
	}
}

// restoreOnTop: B loses batches [k, k+lost) (Pebble without fsync loses its
// last batches in a crash) and replays them from A's changelog. Both keep
// customer records in write-back for up to writeBack commits.
func restoreOnTop(t *testing.T, k, lost, writeBack int) {
	cfg := testConfig(vfs.NewMem())
	cfg.WriteBackCommits = writeBack
	a, err := Open(cfg, zap.NewNop())
	must(t, err)
	t.Cleanup(func() { a.Close() })
	cfg.FS = vfs.NewMem()
	b, err := Open(cfg, zap.NewNop())
	must(t, err)
	t.Cleanup(func() { b.Close() })
	pa, pb := a.Partition(3), b.Partition(3)
	var log []record
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var heldA, heldB []int64
	var nextA, nextB int64
	for batch := 0; batch < 16; batch++ {
		now := base.Add(time.Duration(batch) * time.Hour)
		first := len(log)
		outA := randomBatch(t, pa, rand.New(rand.NewPCG(uint64(batch), 2)), now, &heldA, &nextA)
		log = runBatch(t, pa, log)
		if batch >= k && batch < k+lost {
			if batch == k+lost-1 {
				offs, err := pb.Offsets()
				must(t, err)
				for _, r := range log[offs.Persisted+1:] {
					must(t, pb.ApplyChangelog(r.key, r.value, r.offset))
				}
				must(t, pb.FlushRestore())
				heldB = append(heldB[:0], heldA...)
				nextB = nextA
			}
			continue
		}
		outB := randomBatch(t, pb, rand.New(rand.NewPCG(uint64(batch), 2)), now, &heldB, &nextB)
		if outA != outB {
			t.Fatalf("batch %d: A did %s\nB did %s", batch, outA, outB)
		}
		// B commits with A's offsets for the same records; a copy, so
		// that A's log stays as it is.
		runBatch(t, pb, log[:first:first])
	}
	must(t, pa.writeBackAll())
	must(t, pb.writeBackAll())
	da, db := dump(t, a, 3), dump(t, b, 3)
	if !reflect.DeepEqual(stripMeta(da), stripMeta(db)) {
		t.Errorf("state differs after a restore of batches [%d,%d):\nA %q\nB %q", k, k+lost, stripMeta(da), stripMeta(db))
	}
	if pa.PendingTimers() != pb.PendingTimers() || pa.HeldCount() != pb.HeldCount() {
		t.Errorf("counts differ: timers %d/%d held %d/%d", pa.PendingTimers(), pb.PendingTimers(), pa.HeldCount(), pb.HeldCount())
	}
}

func stripMeta(kvs [][2]string) [][2]string {
	var out [][2]string
	for _, kv := range kvs {
		if kv[0][partLen] == kindMeta {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// randomBatch runs one batch of random operations and returns a
// description of what it observed (fired timers), so that two stores can be
// compared step by step.
func randomBatch(t *testing.T, p *Partition, r *rand.Rand, now time.Time, held *[]int64, next *int64) string {
	t.Helper()
	var out bytes.Buffer
	due, err := p.PopDue(now, 0, nil)
	must(t, err)
	for _, tm := range due {
		fmt.Fprintf(&out, "fired %s/%s@%s ", tm.Customer, tm.ID, tm.Due.Format(time.TimeOnly))
	}
	for i := 0; i < 30; i++ {
		c := schemas.CustomerID(fmt.Sprintf("c%d", r.IntN(15)))
		cust, err := p.Customer(c)
		must(t, err)
		cust.Events++
		cust.Cart.LastEvent = fmt.Sprintf("e%d", r.IntN(1000))
		switch r.IntN(5) {
		case 0, 1:
			must(t, p.Schedule(schemas.Timer{Customer: c, ID: "cart", Due: now.Add(time.Duration(r.IntN(180)) * time.Minute), Rule: "r", Stage: 1, Occurrence: cust.Cart.LastEvent}))
		case 2:
			must(t, p.Cancel(c, "cart"))
		case 3:
			must(t, p.Hold(HeldRecord{Input: 1, Offset: *next, Time: now, Key: []byte(c), Value: []byte("v")}))
			*held = append(*held, *next)
			*next++
		case 4:
			if len(*held) > 0 {
				j := r.IntN(len(*held))
				must(t, p.Release(1, (*held)[j]))
				*held = append((*held)[:j], (*held)[j+1:]...)
			}
		}
	}
	p.SetOffset("in", *next)
	return out.String()
}
