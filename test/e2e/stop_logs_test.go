package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/test/harness"
)

// TestStopWarnsNothing: a processor stopped while its caught-up check waits
// for the broker (the inputs' and the raw inputs' end offsets) logs no
// warning about it. A stop is not a fault; a warning at every stop would
// teach an SRE to ignore the one that means a slow broker. The broker holds
// the check's ListOffsets requests (kfake's request control) until the
// processor has stopped.
func TestStopWarnsNothing(t *testing.T) {
	kf, c := harness.NewKfake(t)
	cfg := c.Topics(t, 2)
	rawSetup(t, c, &cfg, 3)

	var armed atomic.Bool
	asleep, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	kf.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		if lo := req.(*kmsg.ListOffsetsRequest); armed.Load() && lo.IsolationLevel == 1 {
			once.Do(func() { close(asleep) })
			kf.SleepControl(func() { <-release })
		}
		return nil, nil, false // answered as usual
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	core, logs := observer.New(zapcore.WarnLevel)
	proc, err := processor.New(cfg, processor.Options{Logger: zap.New(core), Store: memStore(t), Rules: harness.CartRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	p := harness.NewProducer(t, c, cfg, nil)
	p.Tick(2, time.Now().UTC())
	harness.WaitEvents(t, proc, 3*2)

	armed.Store(true)
	select {
	case <-asleep:
	case <-time.After(30 * time.Second):
		t.Fatal("no read_committed ListOffsets request within 30s: the caught-up check did not run")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("processor: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("processor did not stop within 30s of cancel")
	}
	close(release)

	for _, e := range logs.All() {
		if strings.Contains(e.Message, "to tell idle inputs from lagging ones") {
			t.Errorf("logged at %s on a stop: %s %v", e.Level, e.Message, e.ContextMap())
		}
	}
}
