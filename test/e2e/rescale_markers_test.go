package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor/rescale"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRescaleWaitsForMarkers: a transaction on the changelog that ends
// while the rescale checks it (as the last cycle's does when the rescale
// runs just after the deployment stopped: EndTxn returns before the
// markers are written) is waited for, and the rescale completes; one that
// stays open (a processor killed inside it) is refused, naming the
// partition, and nothing is written.
func TestRescaleWaitsForMarkers(t *testing.T) {
	_, c := harness.NewKfake(t)
	cfg := rescaleConfig(c.Topics(t, 2))
	r, _ := runPhase(t, c, cfg, 2, rescaleWorkload(11)[0], 0, false)
	r.stop(t)
	waitNoMembers(t, c, cfg.Group)

	// openOnChangelog begins a transaction writing a tombstone of a
	// customer no one has to the changelog (a record the rescale reads
	// and drops), and returns the client that holds it open.
	openOnChangelog := func(id string) *kgo.Client {
		cl := c.Client(t, kgo.TransactionalID(id), kgo.DefaultProduceTopic(cfg.Topics.Changelog),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: 1, Key: []byte("cno-such-customer")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return cl
	}

	t.Run("open", func(t *testing.T) {
		cl := openOnChangelog("rescale-markers-open")
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
				t.Fatal(err)
			}
		}()
		var progress lineBuffer
		_, err := rescale.Run(context.Background(), cfg, rescale.Options{To: 4, Progress: &progress})
		var refused *rescale.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "transaction is open on the changelog") ||
			!strings.Contains(refused.Reason, cfg.Topics.Changelog+"[1]") {
			t.Fatalf("rescale with a transaction left open on the changelog: %v; want refused, naming partition 1\nprogress:\n%s", err, progress.String())
		}
		if !progress.contains("waiting up to") {
			t.Fatalf("the rescale refused without waiting for the markers; progress:\n%s", progress.String())
		}
		if n := partitionCount(t, c, rescale.NextName(cfg.Topics.Changelog)); n != 0 {
			t.Fatalf("the refused rescale created the new changelog (%d partitions)", n)
		}
	})

	t.Run("ending", func(t *testing.T) {
		cl := openOnChangelog("rescale-markers-ending")
		ended := make(chan error, 1)
		go func() {
			time.Sleep(time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ended <- cl.EndTransaction(ctx, kgo.TryCommit)
		}()
		var progress lineBuffer
		res, err := rescale.Run(context.Background(), cfg, rescale.Options{To: 4, Progress: &progress})
		if err := <-ended; err != nil {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("rescale with a transaction ending on the changelog: %v\nprogress:\n%s", err, progress.String())
		}
		if !progress.contains("waiting up to") {
			t.Fatalf("the rescale did not meet the open transaction; progress:\n%s", progress.String())
		}
		if res.Customers == 0 || res.From != 2 || res.To != 4 {
			t.Fatalf("rescale result %+v: want customers moved from 2 to 4 partitions", res)
		}
		t.Logf("%s", res.Summary())
	})
}

// waitNoMembers waits until group has no members: a stopped static member
// stays until its session times out, and a rescale refuses meanwhile.
func waitNoMembers(t *testing.T, c *harness.Cluster, group string) {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		gs, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			err = gs.Error()
		}
		if err == nil && len(gs[group].Members) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s still has members (%v) after 60s", group, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// partitionCount returns topic's partition count, 0 when it does not
// exist.
func partitionCount(t *testing.T, c *harness.Cluster, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := kadm.NewClient(c.Client(t)).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if td, ok := d[topic]; ok && td.Err == nil {
		return len(td.Partitions)
	}
	return 0
}
