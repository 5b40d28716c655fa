package processor

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// openOn leaves a transaction of transactional ID id open on the topic's
// partition 0 (one record produced, never ended) and returns its client,
// which the caller must not end the transaction with.
func openOn(t *testing.T, brokers []string, topic, id string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id),
		kgo.TransactionTimeout(time.Minute), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// A stalled restore names the transaction holding its changelog partition:
// whose transactional ID it is (this instance's, another instance of the
// group, a stranger), and gives the command that aborts it at its first
// offset. This instance's own transaction, and only that, ends the wait with
// a new session once it outlives the transaction timeout.
func TestRestoreStallNamesTheTransaction(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "changelog"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Group, cfg.InstanceID = brokers, "g", "i1"
	cfg.Topics.Changelog = "changelog"
	cfg.TransactionTimeout = 10 * time.Second
	p := &Processor{cfg: cfg, adm: kadm.NewClient(admCl), log: zap.NewNop()}
	p.g = newGuarantee(p)
	ctx := context.Background()

	for _, tc := range []struct {
		id, owner  string
		newSession bool
		action     string
	}{
		{"stranger-app", "stranger", false, "not this group's"},
		{"g-i2", "peer", false, `instance "i2"`},
		{"g-i1", "self", true, "own transaction is still open"},
	} {
		t.Run(tc.owner, func(t *testing.T) {
			cl := openOn(t, brokers, "changelog", tc.id)
			open, err := p.openTxns(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(open) != 1 {
				t.Fatalf("%d open transactions found, want 1: %+v", len(open), open)
			}
			o := &open[0]
			if o.txnID != tc.id {
				t.Errorf("transactional ID %q, want %q", o.txnID, tc.id)
			}
			if who, _ := p.owner(o.txnID); who != tc.owner {
				t.Errorf("owner %q, want %q", who, tc.owner)
			}
			if o.hanging() {
				t.Errorf("an open transaction its coordinator knows (%s, covers the partition: %v) is reported hanging", o.state, o.covers)
			}
			if dl := o.deadline(); dl.IsZero() || dl.Before(time.Now()) || dl.After(time.Now().Add(time.Minute)) {
				t.Errorf("coordinator deadline %v, want within its 1-minute timeout", dl)
			}
			action, newSession := p.stallAction(o, 2*cfg.TransactionTimeout, time.Now())
			if newSession != tc.newSession || !strings.Contains(action, tc.action) {
				t.Errorf("action %q (new session %v), want one saying %q (new session %v)", action, newSession, tc.action, tc.newSession)
			}
			abort, find := p.abortCommands(0, o.startOffset)
			want := "kafka-transactions.sh --bootstrap-server " + strings.Join(brokers, ",") + " abort --topic changelog --partition 0 --start-offset "
			if !strings.HasPrefix(abort, want) || !strings.HasSuffix(abort, " "+strconv.FormatInt(o.startOffset, 10)) {
				t.Errorf("abort command %q, want %q followed by %d", abort, want, o.startOffset)
			}
			if !strings.Contains(find, " find-hanging --topic changelog --partition 0") {
				t.Errorf("find command %q", find)
			}
			// Ended, it no longer holds the partition.
			if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
				t.Fatal(err)
			}
			if open, err := p.openTxns(ctx, 0); err != nil || len(open) != 0 {
				t.Errorf("after the abort: %d open transactions (%v), want none", len(open), err)
			}
		})
	}

	// A transaction the coordinator does not cover on the partition is a
	// hanging one, whatever its owner, and only an operator ends it.
	o := &openTxn{producerID: 7, epoch: 1, startOffset: 3, txnID: "g-i2", state: "Ongoing", covers: false}
	if !o.hanging() {
		t.Errorf("a transaction whose coordinator does not cover the partition is not reported hanging")
	}
	if action, newSession := p.stallAction(o, time.Hour, time.Now()); newSession || !strings.Contains(action, "hanging") {
		t.Errorf("hanging: action %q (new session %v)", action, newSession)
	}
	o = &openTxn{producerID: 7, epoch: 1, startOffset: 3, txnID: "g-i2"} // its ID has another producer ID now
	if action, newSession := p.stallAction(o, time.Hour, time.Now()); !o.hanging() || newSession || !strings.Contains(action, "moved on to another producer ID") {
		t.Errorf("moved-on transactional ID: hanging %v, action %q (new session %v)", o.hanging(), action, newSession)
	}
	o = &openTxn{producerID: 7, epoch: 1, startOffset: 3, txnID: "g-i2", unknown: context.DeadlineExceeded}
	if action, newSession := p.stallAction(o, time.Hour, time.Now()); o.hanging() || newSession || !strings.Contains(action, "could not be asked") {
		t.Errorf("coordinator not asked: hanging %v, action %q (new session %v): neither open nor hanging is known", o.hanging(), action, newSession)
	}
	o = &openTxn{producerID: 7, epoch: 1, startOffset: 3, txnID: "g-i1", state: "CompleteCommit", covers: false}
	if action, newSession := p.stallAction(o, time.Hour, time.Now()); newSession || !strings.Contains(action, "operator") {
		t.Errorf("own hanging transaction: action %q (new session %v): a new session cannot end it", action, newSession)
	}
}
