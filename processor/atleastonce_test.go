package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
)

// atLeastOnceCycle is an at-least-once processor on kfake with one worker
// (partition 0, in-memory Pebble) that has run a cycle over one add_to_cart
// record and waits for endBatch.
func atLeastOnceCycle(t *testing.T) (*Processor, *worker) {
	t.Helper()
	cfg := DefaultConfig()
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(1, cfg.Topics.Changelog, cfg.Topics.Triggers, cfg.Topics.DeadLetter, cfg.SuppressionsTopic()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Brokers, cfg.Guarantee, cfg.InstanceID = c.ListenAddrs(), AtLeastOnce, "i1"
	store, err := state.Open(state.Config{Dir: "/state", FS: vfs.NewMem()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	rs, err := rules.CartOnly(time.Hour, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, Options{Logger: zap.NewNop(), Store: store, Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RecordPartitioner(newPartitioner(cfg.Topics.Changelog, cfg.Partitioner)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	p.cl, p.out.cl = cl, cl
	ctx := context.Background()
	if p.out.trigEnc, err = schemas.NewTriggerEncoder(ctx, cfg.Encodings.Triggers, nil, cfg.Topics.Triggers+"-value"); err != nil {
		t.Fatal(err)
	}
	w, err := newWorker(p, 0, store.Partition(0))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.NewEventEncoder(ctx, schemas.SourceClickstream, cfg.Encodings.Clickstream, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	val, err := enc.Encode(nil, &schemas.Event{Source: schemas.SourceClickstream, ID: "e1", Customer: "c1", Type: "add_to_cart",
		Time: now.Add(-time.Minute), ProductID: "p1", Quantity: 1, Price: schemas.Money{Minor: 1999, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	w.inputs[0].recs = []*kgo.Record{{Topic: cfg.Topics.Clickstream, Partition: 0, Offset: 0, Key: []byte("c1"), Value: val, Timestamp: now}}
	w.cycle(now)
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.batchEnd == nil || !state.IsBatchEnd(w.batchEnd.Key) {
		t.Fatalf("the cycle holds back %v, not the offsets record that closes its batch", w.batchEnd)
	}
	return p, w
}

// changelog reads every record of the changelog's partition 0.
func changelog(t *testing.T, p *Processor) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(p.cl).ListEndOffsets(ctx, p.cfg.Topics.Changelog)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(p.cfg.Topics.Changelog, 0)
	if end.Offset == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.Topics.Changelog: {0: kgo.NewOffset().AtStart()}}))
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
