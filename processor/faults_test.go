package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// faultyProcessor is a processor with only what the fault handling uses, and
// its error log lines.
func faultyProcessor(t *testing.T) (*Processor, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	cfg := DefaultConfig()
	cfg.Group, cfg.InstanceID, cfg.SessionTimeout = "g", "pod-0", time.Second
	p := &Processor{cfg: cfg, log: zap.New(core), m: newMetrics(nil), workers: map[int32]*worker{}}
	p.g = newGuarantee(p)
	return p, logs
}

func probe(t *testing.T, p *Processor, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	p.OpsHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// A lost group session makes the processor unready at once, saying why; it
// is ready again only after a cycle that started after the rejoin's
// assignment (which restored that assignment), not at the assignment itself.
func TestGroupLostThenRejoined(t *testing.T) {
	p, _ := faultyProcessor(t)
	p.ready.Store(true)
	if code, _ := probe(t, p, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d before any fault", code)
	}
	p.groupLost(fmt.Errorf("heartbeat: %w", kerr.UnknownMemberID))
	code, body := probe(t, p, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "UNKNOWN_MEMBER_ID") || !strings.Contains(body, "attempt 1 of 8") {
		t.Fatalf("/readyz after a lost group session: %d %q", code, body)
	}
	p.lastCycle.Store(time.Now().UnixNano()) // the loop keeps polling
	if !p.Alive(time.Hour) {
		t.Errorf("not alive, out of the group for less than the window")
	}
	p.faults.mu.Lock()
	p.faults.since = time.Now().Add(-2 * time.Hour)
	p.faults.mu.Unlock()
	if p.Alive(time.Hour) {
		t.Errorf("alive, out of the group for longer than the window")
	}
	if code, body := probe(t, p, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "UNKNOWN_MEMBER_ID") {
		t.Errorf("/healthz out of the group for longer than the window: %d %q", code, body)
	}
	p.ready.Store(true) // a cycle in flight when the session was lost ends
	before := p.faults.generation()
	p.faults.assigned()
	p.faults.cycled(before) // that cycle started before the assignment
	if ready, why := p.Readiness(); ready || !strings.Contains(why, "restoring") {
		t.Fatalf("after the rejoin's assignment, before a cycle took it: ready %v (%s)", ready, why)
	}
	if !p.Alive(time.Hour) {
		t.Error("not alive while restoring after the rejoin (the restore makes progress)")
	}
	p.faults.cycled(p.faults.generation())
	if !p.Ready() || !p.Alive(time.Hour) {
		_, why := p.Readiness()
		t.Fatalf("not ready after a cycle on the new assignment: %s", why)
	}
}

// Rejoins are bounded: the processor stops when kgo loses more than
// maxGroupRejoins sessions in a row without an assignment; an assignment in
// between starts the count again.
func TestGroupRejoinsBounded(t *testing.T) {
	p, logs := faultyProcessor(t)
	ctx, stop := context.WithCancelCause(context.Background())
	p.faults.begin(stop)
	lost := fmt.Errorf("join: %w", kerr.CoordinatorNotAvailable)
	for range maxGroupRejoins {
		p.groupLost(lost)
	}
	p.faults.assigned()
	for range maxGroupRejoins {
		p.groupLost(lost)
	}
	if fatal := p.faults.state().fatal; fatal != nil || ctx.Err() != nil {
		t.Fatalf("stopped after %d losses in a row: %v", maxGroupRejoins, fatal)
	}
	p.groupLost(lost)
	fatal := p.faults.state().fatal
	if fatal == nil || !errors.Is(fatal, kerr.CoordinatorNotAvailable) || !strings.Contains(fatal.Error(), "could not rejoin") {
		t.Fatalf("after %d losses in a row: fatal %v", maxGroupRejoins+1, fatal)
	}
	if !errors.Is(context.Cause(ctx), kerr.CoordinatorNotAvailable) {
		t.Errorf("the session's loop was not stopped with the fault: %v", context.Cause(ctx))
	}
	if p.Alive(time.Hour) {
		t.Error("alive after a fatal fault")
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d error lines, want 1", n)
	}
}

// FENCED_INSTANCE_ID is fatal at once: one error line with the instance ID
// and the fix; both probes answer 503 naming it; nothing clears it.
func TestFencedInstanceIsFatal(t *testing.T) {
	p, logs := faultyProcessor(t)
	p.ready.Store(true)
	ctx, stop := context.WithCancelCause(context.Background())
	p.faults.begin(stop)
	p.groupLost(fmt.Errorf("heartbeat: %w", kerr.FencedInstanceID))
	// The same fault seen again (the transaction's offset commit) is
	// not logged twice.
	p.fail(p.errFenced(kerr.FencedInstanceID))
	fatal := p.faults.state().fatal
	var fe *fencedError
	if !errors.As(fatal, &fe) || !errors.Is(fatal, kerr.FencedInstanceID) || !strings.Contains(fatal.Error(), `"pod-0"`) {
		t.Fatalf("fatal %v, want the fenced error naming the instance ID", fatal)
	}
	if !errors.Is(context.Cause(ctx), kerr.FencedInstanceID) {
		t.Errorf("the session's loop was not stopped: %v", context.Cause(ctx))
	}
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 || errs[0].ContextMap()["instance_id"] != "pod-0" || !strings.Contains(errs[0].ContextMap()["fix"].(string), "instance_id") {
		t.Fatalf("error lines %v, want one naming the instance ID and the fix", errs)
	}
	for _, path := range []string{"/readyz", "/healthz"} {
		if code, body := probe(t, p, path); code != http.StatusServiceUnavailable || !strings.Contains(body, "fenced") {
			t.Errorf("%s: %d %q, want 503 naming the fencing", path, code, body)
		}
	}
	p.faults.assigned()
	p.faults.cycled(p.faults.generation())
	if p.Ready() {
		t.Error("a fatal fault was cleared by an assignment and a cycle")
	}
	// A new session's loop is stopped at once too.
	ctx2, stop2 := context.WithCancelCause(context.Background())
	p.faults.begin(stop2)
	if ctx2.Err() == nil {
		t.Error("a session begun after a fatal fault runs")
	}
}

// Errors no rejoin can fix stop at once; the others are rejoined.
func TestGroupErrorsClassified(t *testing.T) {
	for _, c := range []struct {
		err   error
		fatal bool
	}{
		{kerr.FencedInstanceID, true},
		{kerr.GroupAuthorizationFailed, true},
		{kerr.SaslAuthenticationFailed, true},
		{kerr.UnknownMemberID, false},
		{kerr.IllegalGeneration, false},
		{kerr.NotCoordinator, false},
		{kerr.GroupMaxSizeReached, false},
	} {
		p, _ := faultyProcessor(t)
		p.groupLost(c.err)
		if fatal := p.faults.state().fatal; (fatal != nil) != c.fatal {
			t.Errorf("%v: fatal %v, want fatal=%v", c.err, fatal, c.fatal)
		}
	}
	for _, err := range []error{kerr.ProducerFenced, fmt.Errorf("end: %w", kerr.InvalidProducerEpoch)} {
		if !producerFenced(err) {
			t.Errorf("%v is not seen as a fenced producer", err)
		}
	}
	if producerFenced(kerr.UnknownProducerID) {
		t.Error("UNKNOWN_PRODUCER_ID (kgo recovers) seen as a fenced producer")
	}
}

// A fenced producer waits for the group's verdict: a fencing that arrives
// meanwhile ends the wait at once and is returned.
func TestAwaitGroupVerdict(t *testing.T) {
	p, _ := faultyProcessor(t)
	p.ready.Store(true)
	ctx, stop := context.WithCancelCause(context.Background())
	p.faults.begin(stop)
	go func() {
		time.Sleep(50 * time.Millisecond)
		p.groupLost(kerr.FencedInstanceID)
	}()
	started := time.Now()
	fatal := p.awaitGroupVerdict(ctx)
	if !errors.Is(fatal, kerr.FencedInstanceID) {
		t.Fatalf("verdict %v, want the fencing", fatal)
	}
	if waited := time.Since(started); waited >= groupVerdictWait {
		t.Errorf("waited %s: the fencing did not end the wait", waited)
	}
}
