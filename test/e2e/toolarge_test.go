package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRecordTooLarge: the changelog topic takes records of at most 2,000
// bytes and a customer's state outgrows that. The broker will refuse the
// record every time, so retrying the cycle would loop forever: the
// processor must stop, saying which topic refused a record and why.
func TestRecordTooLarge(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1)
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	compact, small := "compact", "2000"
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact, "max.message.bytes": &small}, cfg.Topics.Changelog)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create changelog: %v", err)
	}
	harness.WaitTopics(t, ctx, adm, 1, cfg.Topics.Changelog)
	sc := state.DefaultConfig()
	sc.Dir, sc.FS = "state", vfs.NewMem()
	store, err := state.Open(sc, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	proc, err := processor.New(cfg, processor.Options{Logger: zaptest.NewLogger(t), Store: store, Rules: harness.CartRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- proc.Run(runCtx) }()

	t0 := time.Now().UTC().Add(-time.Hour)
	var evs []schemas.Event
	for i := range 60 {
		evs = append(evs, click(fmt.Sprintf("add-%d", i), "hoarder", schemas.AddToCart, t0,
			fmt.Sprintf("product-with-a-long-identifier-%04d", i)))
	}
	harness.NewProducer(t, c, cfg, nil).Send(1, evs...)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "refuses a record for good") || !strings.Contains(err.Error(), cfg.Topics.Changelog) {
			t.Fatalf("Run() = %v, want the refused changelog record named", err)
		}
		t.Logf("stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the processor kept retrying a record the broker refuses for good")
	}
}
