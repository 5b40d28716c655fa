package harness

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/state"
)

// CartRules is the cart abandonment rule alone, as docs/scenarios.md sets it
// (1 h, then 24 h): the behaviour the end-to-end and system tests check.
func CartRules(t testing.TB) *rules.Set {
	t.Helper()
	rs, err := rules.CartOnly(time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// RunProcessor runs an in-process processor with the rules rs until the
// test ends.
func RunProcessor(t testing.TB, cfg processor.Config, rs *rules.Set, reg *sr.Client) *processor.Processor {
	t.Helper()
	proc, _ := StartProcessor(t, cfg, rs, reg, processor.Options{})
	return proc
}

// StartProcessor is RunProcessor with more options (o's logger, store,
// rules and registry are set here) and the processor's state store, which
// stays open until the processor has stopped at the end of the test.
func StartProcessor(t testing.TB, cfg processor.Config, rs *rules.Set, reg *sr.Client, o processor.Options) (*processor.Processor, *state.Store) {
	t.Helper()
	sc := state.DefaultConfig()
	sc.Dir = "state"
	sc.FS = vfs.NewMem()
	store, err := state.Open(sc, zaptest.NewLogger(t).Named("state"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t).With(zap.String("instance", cfg.InstanceID))
	}
	o.Store, o.Rules, o.Registry = store, rs, reg
	proc, err := processor.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("processor: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("processor did not stop within 30s of cancel")
		}
		if err := store.Close(); err != nil {
			t.Errorf("closing state: %v", err)
		}
	})
	return proc, store
}

// WaitEvents waits until the processor has committed n input events.
func WaitEvents(t testing.TB, proc *processor.Processor, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for proc.Stats().Events < n {
		if time.Now().After(deadline) {
			t.Fatalf("processor committed %d of %d events within 60s", proc.Stats().Events, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
