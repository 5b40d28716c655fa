package processor

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
)

// newAtLeastOnce is an at-least-once processor on kfake (nparts partitions
// per topic) with in-memory Pebble and the session's client, as Run would
// set them up, but in no group.
func newAtLeastOnce(t *testing.T, nparts int32) *Processor {
	t.Helper()
	cfg := DefaultConfig()
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(nparts, cfg.Topics.Changelog, cfg.Topics.Triggers, cfg.Topics.DeadLetter, cfg.SuppressionsTopic()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Brokers, cfg.Guarantee, cfg.InstanceID = c.ListenAddrs(), AtLeastOnce, "i1"
	rs, err := rules.CartOnly(time.Hour, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, Options{Logger: zap.NewNop(), Store: memStore(t), Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RecordPartitioner(newPartitioner(cfg.Topics.Changelog, cfg.Partitioner)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	p.cl, p.out.cl, p.adm = cl, cl, kadm.NewClient(cl)
	if p.out.trigEnc, err = schemas.NewTriggerEncoder(context.Background(), cfg.Encodings.Triggers, nil, cfg.Topics.Triggers+"-value"); err != nil {
		t.Fatal(err)
	}
	return p
}

// memStore is a state store in memory.
func memStore(t *testing.T) *state.Store {
	t.Helper()
	store, err := state.Open(state.Config{Dir: "/state", FS: vfs.NewMem()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// cycleOn runs a cycle of a new worker of partition part over one
// add_to_cart record of customer (which schedules the cart reminder), at
// the input offset its state expects next, and leaves it waiting for
// endBatch.
func cycleOn(t *testing.T, p *Processor, part int32, customer schemas.CustomerID) *worker {
	t.Helper()
	w, err := newWorker(p, part, p.store.Partition(part))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.NewEventEncoder(context.Background(), schemas.SourceClickstream, p.cfg.Encodings.Clickstream, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	val, err := enc.Encode(nil, &schemas.Event{Source: schemas.SourceClickstream, ID: "e-" + string(customer), Customer: customer,
		Type: "add_to_cart", Time: now.Add(-time.Minute), ProductID: "p1", Quantity: 1, Price: schemas.Money{Minor: 1999, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	// The other inputs have come as far: the record is applied now, not
	// held for them (eventtime.go).
	for i := range w.inputs[1:] {
		w.inputs[1+i].maxTs = now.UnixMilli()
	}
	in := &w.inputs[0]
	w.inputs[0].recs = []*kgo.Record{{Topic: in.topic, Partition: part, Offset: max(in.next, 0), Key: []byte(customer), Value: val, Timestamp: now}}
	w.cycle(now)
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.batchEnd == nil || !state.IsBatchEnd(w.batchEnd.Key) {
		t.Fatalf("the cycle holds back %v, not the offsets record that closes its batch", w.batchEnd)
	}
	return w
}

// atLeastOnceCycle is an at-least-once processor with one worker
// (partition 0) that has run a cycle and waits for endBatch.
func atLeastOnceCycle(t *testing.T) (*Processor, *worker) {
	t.Helper()
	p := newAtLeastOnce(t, 1)
	return p, cycleOn(t, p, 0, "c1")
}

// changelog reads every record of the changelog's partition 0.
func changelog(t *testing.T, p *Processor) []*kgo.Record {
	return changelogOf(t, p, 0)
}

// changelogOf reads every record of the changelog's partition part.
func changelogOf(t *testing.T, p *Processor, part int32) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(p.cl).ListEndOffsets(ctx, p.cfg.Topics.Changelog)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(p.cfg.Topics.Changelog, part)
	if end.Offset == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.Topics.Changelog: {part: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for int64(len(recs)) < end.Offset {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d changelog records: %v", len(recs), end.Offset, err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// A cycle that succeeded: every record of the batch is acknowledged before
// the offsets record that closes it is produced, so the closing record is
// the batch's last in the changelog, and only then is the state applied.
func TestEndAtLeastOnceClosesTheBatchLast(t *testing.T) {
	p, w := atLeastOnceCycle(t)
	if recs := changelog(t, p); len(recs) != 0 {
		// Produced but maybe not yet flushed: nothing closes the batch yet.
		for _, r := range recs {
			if state.IsBatchEnd(r.Key) {
				t.Fatal("the closing offsets record reached the changelog before endBatch")
			}
		}
	}
	sessErr, fatal := p.g.endBatch(context.Background(), []*worker{w}, nil)
	if sessErr != nil || fatal != nil {
		t.Fatalf("endBatch: session error %v, fatal %v", sessErr, fatal)
	}
	recs := changelog(t, p)
	if len(recs) < 2 {
		t.Fatalf("changelog has %d records; want the cycle's state records and the closing offsets record", len(recs))
	}
	for i, r := range recs {
		if last := i == len(recs)-1; state.IsBatchEnd(r.Key) != last {
			t.Fatalf("changelog record %d of %d: batch end %v", i, len(recs), !last)
		}
	}
	if w.batchEnd != nil {
		t.Fatal("the closing record is still held after endBatch")
	}
	offs, err := w.part.Offsets()
	if err != nil {
		t.Fatal(err)
	}
	if got := offs.Inputs[p.cfg.Topics.Clickstream]; got != 1 {
		t.Fatalf("applied state resumes clickstream at %d, want 1", got)
	}
	if got, want := offs.Changelog, recs[len(recs)-1].Offset; got != want {
		t.Fatalf("applied state is at changelog offset %d, want the closing record's %d", got, want)
	}
	if n := p.commitCount.Load(); n != 1 {
		t.Fatalf("commitCount = %d, want 1", n)
	}
	if n := p.Stats().Events; n != 1 {
		t.Fatalf("events counted = %d, want 1", n)
	}
}

// A cycle whose produce failed, or that failed itself, never closes its
// batch: the records that reached the changelog stay an open batch, which a
// restore ignores, the state is dropped, and the input is processed again.
// A record the broker refuses for good stops the processor.
func TestEndAtLeastOnceDropsAFailedCycle(t *testing.T) {
	for _, tc := range []struct {
		name       string
		produceErr error
		cycleErr   error
		fatal      bool
	}{
		{name: "produce failed", produceErr: kerr.NotLeaderForPartition},
		{name: "cycle failed", cycleErr: errors.New("rules state failure")},
		{name: "unproducible", produceErr: kerr.MessageTooLarge, fatal: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, w := atLeastOnceCycle(t)
			if tc.produceErr != nil {
				p.out.failed(&kgo.Record{Topic: p.cfg.Topics.Triggers}, tc.produceErr)
			}
			sessErr, fatal := p.g.endBatch(context.Background(), []*worker{w}, tc.cycleErr)
			if sessErr != nil {
				t.Fatalf("session error %v", sessErr)
			}
			if tc.fatal != (fatal != nil) || (tc.fatal && !errors.Is(fatal, tc.produceErr)) {
				t.Fatalf("fatal error %v, want one: %v", fatal, tc.fatal)
			}
			for i, r := range changelog(t, p) {
				if state.IsBatchEnd(r.Key) {
					t.Fatalf("changelog record %d closes the batch of a dropped cycle", i)
				}
			}
			if p.out.err.Load() != nil {
				t.Fatal("the produce error outlives the cycle")
			}
			if tc.fatal {
				return
			}
			offs, err := w.part.Offsets()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := offs.Inputs[p.cfg.Topics.Clickstream]; ok {
				t.Fatalf("a dropped cycle's input offset was applied: %v", offs.Inputs)
			}
			if n := p.commitCount.Load(); n != 0 {
				t.Fatalf("commitCount = %d, want 0", n)
			}
			if n := p.Stats().Events; n != 0 {
				t.Fatalf("events counted = %d, want 0", n)
			}
		})
	}
}

// The partitions of an assignment are restored together, with one client,
// each to its own committed state; a changelog that ends in a batch a crash
// cut short (a cycle whose produce failed) is repaired so that a second
// restore from the start ends in the same state.
func TestRestoreAllPartitionsTogether(t *testing.T) {
	const nparts = 3
	p := newAtLeastOnce(t, nparts)
	ctx := context.Background()
	for part := range int32(nparts) {
		w := cycleOn(t, p, part, schemas.CustomerID(fmt.Sprint("c", part)))
		if sessErr, fatal := p.g.endBatch(ctx, []*worker{w}, nil); sessErr != nil || fatal != nil {
			t.Fatalf("partition %d: endBatch: %v, %v", part, sessErr, fatal)
		}
	}
	// Partition 1's next cycle reaches the changelog but is never closed.
	w := cycleOn(t, p, 1, "c1-cut")
	p.out.failed(&kgo.Record{Topic: p.cfg.Topics.Triggers}, kerr.NotLeaderForPartition)
	if sessErr, fatal := p.g.endBatch(ctx, []*worker{w}, nil); sessErr != nil || fatal != nil {
		t.Fatalf("dropped cycle: endBatch: %v, %v", sessErr, fatal)
	}
	if recs := changelogOf(t, p, 1); state.IsBatchEnd(recs[len(recs)-1].Key) {
		t.Fatal("partition 1's changelog does not end in a cut batch")
	}
	parts := []int32{0, 1, 2}
	for round := range 2 {
		p.store = memStore(t)
		sps, err := p.restoreAll(ctx, parts)
		if err != nil {
			t.Fatalf("restore %d: %v", round, err)
		}
		for i, sp := range sps {
			offs, err := sp.Offsets()
			if err != nil {
				t.Fatal(err)
			}
			if got := offs.Inputs[p.cfg.Topics.Clickstream]; got != 1 {
				t.Errorf("restore %d, partition %d: resumes clickstream at %d, want 1", round, parts[i], got)
			}
			if got := sp.PendingTimers(); got != 1 {
				t.Errorf("restore %d, partition %d: %d pending timers, want the committed cycle's 1", round, parts[i], got)
			}
		}
		if got := testutil.ToFloat64(p.m.restoring); got != 0 {
			t.Errorf("restore %d: %v partitions still counted as restoring", round, got)
		}
	}
	if got := testutil.ToFloat64(p.m.changelogRepairs); got != 1 {
		t.Fatalf("changelog repairs = %v, want 1 (the first restore; the second finds the batch closed)", got)
	}
}
