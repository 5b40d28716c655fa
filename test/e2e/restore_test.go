package e2e

import (
	"context"
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
