package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRestoreWaitsForOpenTransaction: another producer (a previous owner of
// the partition, as the processor sees it) holds a transaction open on the
// changelog, so a read_committed restore cannot pass its first record. The
// processor must say so (which partition, the last stable offset and the
// end it waits for) instead of standing still in silence, and finish the
// restore and process events once the transaction is aborted.
func TestRestoreWaitsForOpenTransaction(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1)
	createChangelog(t, c, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	other := c.Client(t, kgo.TransactionalID(cfg.Group+"-previous-owner"), kgo.TransactionTimeout(time.Minute),
		kgo.DefaultProduceTopic(cfg.Topics.Changelog))
	if err := other.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := other.ProduceSync(ctx, &kgo.Record{Key: []byte("c\x00not-committed"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("producing in the open transaction: %v", err)
	}

	core, logs := observer.New(zapcore.WarnLevel)
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{Logger: zap.New(core)})
	var warning observer.LoggedEntry
	for deadline := time.Now().Add(30 * time.Second); ; {
		if w := logs.FilterMessageSnippet("restore waiting for the changelog").All(); len(w) > 0 {
			warning = w[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no warning within 30s that the restore waits for an open transaction")
		}
		time.Sleep(50 * time.Millisecond)
	}
	f := warning.ContextMap()
	if f["partition"] != int32(0) || f["last_stable_offset"] != int64(0) || f["end"] != int64(1) || f["restored_to"] != int64(-1) {
		t.Errorf("warning fields %v: want partition 0, last_stable_offset 0, end 1, restored_to -1", f)
	}
	if got := proc.Stats().Events; got != 0 {
		t.Fatalf("the processor committed %d events while its restore waited", got)
	}

	if err := other.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatalf("aborting the open transaction: %v", err)
	}
	at := time.Now().UTC().Add(-time.Hour)
	harness.NewProducer(t, c, cfg, nil).Send(1, click("e1", "c1", schemas.AddToCart, at, "p1"))
	harness.WaitEvents(t, proc, 1)
}

// TestPartitionBackAfterAMove: a partition leaves an instance while the
// customer records of its last cycles are still in the write-back (not in
// Pebble), another instance processes it, and it comes back. The restore
// must replay the changelog from where Pebble is complete
// (Offsets.Persisted), not from the last commit, or the records that were
// only in the write-back are lost: the customer's count must go on from
// where it was.
func TestPartitionBackAfterAMove(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 2
	cfg := c.Topics(t, parts)
	// One customer on each partition: whichever partition moves, one of
	// them has records in the write-back when it does.
	var xs, ys [parts]string
	for i := 0; xs[0] == "" || xs[1] == "" || ys[0] == "" || ys[1] == ""; i++ {
		id := fmt.Sprintf("mover-%d", i)
		q := harness.PartitionOf(id, parts)
		if xs[q] == "" {
			xs[q] = id
		} else if ys[q] == "" {
			ys[q] = id
		}
	}
	sa := memStore(t)
	a := start(t, cfg, sa)
	p := harness.NewProducer(t, c, cfg, nil)
	at := time.Now().UTC().Add(-time.Hour)
	for q := range parts {
		p.Send(parts, click(fmt.Sprintf("%s-1", xs[q]), xs[q], schemas.AddToCart, at, "p1"),
			click(fmt.Sprintf("%s-2", xs[q]), xs[q], schemas.AddToCart, at.Add(time.Second), "p2"))
	}
	p.Tick(parts, at.Add(time.Minute))
	harness.WaitEvents(t, a.proc, 2*parts+3*parts)

	// A second instance takes one partition, q, and processes an event.
	cfg2 := cfg
	cfg2.InstanceID = "i2"
	b := start(t, cfg2, memStore(t))
	q := int32(-1)
	for deadline := time.Now().Add(60 * time.Second); q < 0; time.Sleep(50 * time.Millisecond) {
		for i := range int32(parts) {
			if b.proc.Serves(i) {
				q = i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the second instance was given no partition within 60s")
		}
	}
	p.Send(parts, click("y-1", ys[q], schemas.AddToCart, at.Add(2*time.Second), "p3"))
	p.Tick(parts, at.Add(2*time.Minute))
	harness.WaitEvents(t, b.proc, 1+3) // y's event and the ticks of q

	// It leaves; q comes back to the first, which processes x's third event.
	b.stop(t)
	for deadline := time.Now().Add(60 * time.Second); !a.proc.Serves(q); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("partition %d did not come back within 60s", q)
		}
	}
	before := a.proc.Stats().Events
	p.Send(parts, click(fmt.Sprintf("%s-3", xs[q]), xs[q], schemas.AddToCart, at.Add(3*time.Second), "p4"))
	p.Tick(parts, at.Add(3*time.Minute))
	harness.WaitEvents(t, a.proc, before+1+3*parts)
	a.stop(t)
	cs, found, err := sa.ReadCustomer(q, schemas.CustomerID(xs[q]))
	if err != nil || !found || cs.Customer.Events != 3 {
		t.Errorf("after partition %d moved away and back: %s found=%v events=%d err=%v, want 3 events", q, xs[q], found, cs.Customer.Events, err)
	}
}
