package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// memStore opens a state store on an in-memory file system, closed at the
// end of the test.
func memStore(t *testing.T) *state.Store {
	t.Helper()
	sc := state.DefaultConfig()
	sc.Dir, sc.FS = "state", vfs.NewMem()
	store, err := state.Open(sc, zaptest.NewLogger(t).Named("state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// running is a processor with the cart rules run in-process by start, for
// tests that stop it, restart it on the same store, or wait for it to stop
// by itself.
type running struct {
	proc   *processor.Processor
	reg    *prometheus.Registry // its metrics
	done   <-chan error         // Run's result
	cancel context.CancelFunc
}

func start(t *testing.T, cfg processor.Config, store *state.Store) *running {
	t.Helper()
	r := &running{reg: prometheus.NewRegistry()}
	proc, err := processor.New(cfg, processor.Options{Logger: zaptest.NewLogger(t), Registerer: r.reg, Store: store, Rules: harness.CartRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	r.proc, r.done, r.cancel = proc, done, cancel
	t.Cleanup(cancel)
	return r
}

// stop stops the processor and fails the test if it had failed.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("processor: %v", err)
	}
}

// stopped waits for the processor to stop by itself with an error other
// than a timeout, within the limit, and returns that error.
func (r *running) stopped(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		switch {
		case err == nil:
			t.Fatal("processor stopped without an error")
		case errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("error is a timeout, not the cause: %v", err)
		}
		return err
	case <-time.After(limit):
		t.Fatalf("processor still running after %s; it must stop with a clear error", limit)
		return nil
	}
}
