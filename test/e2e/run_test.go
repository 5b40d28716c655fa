package e2e

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
	proc     *processor.Processor
	reg      *prometheus.Registry // its metrics
	finished chan struct{}        // closed when Run has returned
	err      error                // Run's result, once finished is closed
	cancel   context.CancelFunc
}

// start runs a processor until the test stops it or ends: the test's end
// cancels it and waits for Run to return, so that nothing it logs comes
// after the test.
func start(t *testing.T, cfg processor.Config, store *state.Store) *running {
	t.Helper()
	r := &running{reg: prometheus.NewRegistry(), finished: make(chan struct{})}
	proc, err := processor.New(cfg, processor.Options{Logger: zaptest.NewLogger(t), Registerer: r.reg, Store: store, Rules: harness.CartRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		r.err = proc.Run(ctx)
		close(r.finished)
	}()
	r.proc, r.cancel = proc, cancel
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.finished:
		case <-time.After(30 * time.Second):
			t.Errorf("processor did not stop within 30s of cancel")
		}
	})
	return r
}

// stop stops the processor and fails the test if it had failed.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	<-r.finished
	if r.err != nil && !errors.Is(r.err, context.Canceled) {
		t.Errorf("processor: %v", r.err)
	}
}

// stopped waits for the processor to stop by itself with an error other
// than a timeout, within the limit, and returns that error.
func (r *running) stopped(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case <-r.finished:
		switch {
		case r.err == nil:
			t.Fatal("processor stopped without an error")
		case errors.Is(r.err, context.DeadlineExceeded):
			t.Fatalf("error is a timeout, not the cause: %v", r.err)
		}
		return r.err
	case <-time.After(limit):
		t.Fatalf("processor still running after %s; it must stop with a clear error", limit)
		return nil
	}
}

// createChangelog creates cfg's changelog topic, compacted, with one
// partition and the topic configs in extra, before a processor does.
func createChangelog(t *testing.T, c *harness.Cluster, cfg processor.Config, extra map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	compact := "compact"
	configs := map[string]*string{"cleanup.policy": &compact}
	maps.Copy(configs, extra)
	resp, err := adm.CreateTopic(ctx, 1, 1, configs, cfg.Topics.Changelog)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create changelog: %v", err)
	}
	harness.WaitTopics(t, ctx, adm, 1, cfg.Topics.Changelog)
}

// readChangelog calls fn for every committed record of the changelog
// topic, from the start until it has been quiet for 2 s (60 s at most).
func readChangelog(t *testing.T, c *harness.Cluster, topic string, fn func(*kgo.Record)) {
	t.Helper()
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	deadline := time.Now().Add(60 * time.Second)
	for quiet := time.Now(); time.Since(quiet) < 2*time.Second && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			quiet = time.Now()
			fn(r)
		})
	}
}
