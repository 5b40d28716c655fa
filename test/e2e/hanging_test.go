package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRestoreNamesAStrangerTransaction: a producer that is not the group's
// (its own transactional ID, a 10-minute transaction timeout) wrote to the
// changelog in a transaction and vanished without ending it, so the
// partition's last stable offset stays at that transaction's first offset
// until its coordinator aborts it. The processor's restore must say which
// transaction holds it (its transactional ID, that it is a stranger's) and
// the kafka-transactions.sh command that aborts it; running that command
// (Kafka's own tool, through broker.sh) must unblock the restore, minutes
// before the coordinator would have.
func TestRestoreNamesAStrangerTransaction(t *testing.T) {
	c := harness.NewCluster(t)
	if !c.Real {
		t.Skip("the abort runs Kafka's kafka-transactions.sh against the real broker (TRIGGERD_KAFKA_BROKERS unset: kfake); make test-kafka runs it")
	}
	cfg := c.Topics(t, 1)
	createChangelog(t, c, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	stranger := fmt.Sprintf("report-exporter-%d", rand.Uint32())
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...), kgo.TransactionalID(stranger),
		kgo.TransactionTimeout(10*time.Minute), kgo.DefaultProduceTopic(cfg.Topics.Changelog))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("c\x00not-ours"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("producing in the stranger's transaction: %v", err)
	}
	cl.Close() // without ending the transaction
	adm := kadm.NewClient(c.Client(t))
	ends, err1 := adm.ListEndOffsets(ctx, cfg.Topics.Changelog)
	stable, err2 := adm.ListCommittedOffsets(ctx, cfg.Topics.Changelog)
	end, _ := ends.Lookup(cfg.Topics.Changelog, 0)
	lso, _ := stable.Lookup(cfg.Topics.Changelog, 0)
	if err1 != nil || err2 != nil || lso.Offset != 0 || end.Offset != 1 {
		t.Fatalf("the stranger's transaction does not hold the changelog: last stable offset %d, end %d (%v, %v)", lso.Offset, end.Offset, err1, err2)
	}

	core, logs := observer.New(zapcore.WarnLevel)
	proc, _ := harness.StartProcessor(t, cfg, harness.CartRules(t), nil, processor.Options{Logger: zap.New(core)})
	var f map[string]any
	for deadline := time.Now().Add(30 * time.Second); f == nil; time.Sleep(50 * time.Millisecond) {
		for _, e := range logs.FilterMessageSnippet("an open transaction holds its last stable offset").All() {
			if m := e.ContextMap(); m["transactional_id"] == stranger {
				f = m
			}
		}
		if f == nil && time.Now().After(deadline) {
			t.Fatalf("no warning within 30s naming the transaction %s that holds the restore; warnings: %v", stranger, logs.All())
		}
	}
	cmd, _ := f["abort_command"].(string)
	want := "kafka-transactions.sh --bootstrap-server " + strings.Join(cfg.Brokers, ",") +
		" abort --topic " + cfg.Topics.Changelog + " --partition 0 --start-offset 0"
	if f["owner"] != "stranger" || f["hanging"] != false || cmd != want || f["partition"] != int32(0) || f["transaction_start_offset"] != int64(0) {
		t.Fatalf("the warning says owner %v, hanging %v, partition %v, start offset %v, abort command %q; want a stranger's open transaction on partition 0 from offset 0, aborted by %q (all fields: %v)",
			f["owner"], f["hanging"], f["partition"], f["transaction_start_offset"], cmd, want, f)
	}
	if got := proc.Stats().Events; got != 0 {
		t.Fatalf("the processor committed %d events while its restore waited", got)
	}

	// The operator runs the logged command as it is.
	out, err := exec.Command("../kafka/broker.sh", append([]string{"tool"}, strings.Fields(cmd)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	t.Logf("%s:\n%s", cmd, out)
	at := time.Now().UTC().Add(-time.Hour)
	harness.NewProducer(t, c, cfg, nil).Send(1, click("e1", "c1", schemas.AddToCart, at, "p1"))
	harness.WaitEvents(t, proc, 1)
}
