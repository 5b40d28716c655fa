package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// fencedWithin bounds the time from the second process's start to the
// fenced one's exit: its start (topics, producer, join), a heartbeat (3 s),
// and at most the wait for the group's verdict after a fenced producer.
const fencedWithin = 60 * time.Second

// TestSameInstanceID runs two processes with the same instance ID (static
// membership; it also names the transactional ID) under a steady input.
// The one that joined last takes the ID; the other must become unready at
// once, say why on /readyz and /healthz, log one error line naming the
// instance ID and the fix, and exit non-zero, while the newcomer goes on
// processing. Before, the fenced one logged FENCED_INSTANCE_ID every second,
// forever, and answered 200 on both probes.
//
// First an in-process processor is fenced by a child process (its probes
// and its log are checked in-process), then a new in-process one fences the
// child (its exit status and log are checked as a pod's would be).
func TestSameInstanceID(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 2
	cfg := c.Topics(t, parts)
	cfg.InstanceID = "twin"
	bin := harness.BuildTriggerd(t)
	traffic := startTraffic(t, c, cfg, parts)

	// Phase 1: in-process A, then the child B with the same ID.
	a, aLogs := startObserved(t, cfg)
	waitFor(t, "A ready and processing", func() bool { return a.proc.Ready() && a.proc.Stats().Events > 0 })
	ops := a.proc.OpsHandler(a.reg)
	probes := watchReadiness(ops)
	dir := harness.WorkDir(t)
	logf, err := os.Create(filepath.Join(dir, "triggerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	bOps := harness.FreeAddr(t)
	b := harness.NewChild(t, bin, harness.WriteConfig(t, cfg, dir, bOps), logf, bOps)
	b.Start()
	runErr := a.stopped(t, fencedWithin)
	probes.stop()
	t.Logf("A stopped: %v", runErr)
	if !errors.Is(runErr, kerr.FencedInstanceID) || !strings.Contains(runErr.Error(), `"twin"`) || !strings.Contains(runErr.Error(), "fix:") {
		t.Errorf("A's error does not name FENCED_INSTANCE_ID, the instance ID and the fix: %v", runErr)
	}
	if code, body := get(ops, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "fenced") || !strings.Contains(body, `"twin"`) {
		t.Errorf("A's /readyz after the fencing: %d %q, want 503 naming the fencing and the instance ID", code, body)
	}
	if code, body := get(ops, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("A's /healthz after the fencing: %d %q, want 503", code, body)
	}
	if probes.readyAfterUnready() {
		t.Errorf("A's /readyz answered 200 again after it had answered 503: %v", probes.log())
	}
	checkFencedLine(t, "A", errorLines(aLogs))

	// B keeps processing: everything written until now gets committed.
	traffic.pause()
	waitGroupCaughtUp(t, c, cfg, func() error { return b.Exited() })
	if !b.Running() {
		t.Fatalf("B exited: %v%s", b.Exited(), tail(logf.Name()))
	}
	if resp, err := http.Get("http://" + bOps + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("B's /readyz: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}

	// Phase 2: a new in-process A2 with the same ID fences the child B,
	// which must exit with status 1.
	traffic.resume()
	a2, _ := startObserved(t, cfg)
	select {
	case <-waitExit(b):
	case <-time.After(fencedWithin):
		t.Fatalf("B still running %s after A2 started with the same instance ID%s", fencedWithin, tail(logf.Name()))
	}
	var exit *exec.ExitError
	if err := b.Exited(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("B's exit: %v, want status 1", err)
	}
	checkFencedLine(t, "B", jsonErrorLines(t, logf.Name()))
	traffic.pause()
	waitGroupCaughtUp(t, c, cfg, func() error {
		select {
		case <-a2.finished:
			return fmt.Errorf("A2 stopped: %v", a2.err)
		default:
			return nil
		}
	})
	if !a2.proc.Ready() {
		_, why := a2.proc.Readiness()
		t.Errorf("A2 caught up but is not ready: %s", why)
	}
	t.Logf("events written: %d", traffic.sent.Load())
}

// startObserved is start with the processor's log lines kept for the test
// (and written to the test's log too).
func startObserved(t *testing.T, cfg processor.Config) (*running, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
	r := &running{reg: prometheus.NewRegistry(), finished: make(chan struct{})}
	proc, err := processor.New(cfg, processor.Options{Logger: log, Registerer: r.reg, Store: memStore(t), Rules: harness.CartRules(t)})
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
	return r, logs
}

// traffic writes carts and ticks in event time, a batch every 50 ms, until
// the test ends or it is paused.
type traffic struct {
	sent   atomic.Int64
	paused atomic.Bool
	mu     sync.Mutex // held by pause until the batch in flight is written
}

func startTraffic(t *testing.T, c *harness.Cluster, cfg processor.Config, parts int32) *traffic {
	t.Helper()
	p := harness.NewProducer(t, c, cfg, nil)
	tr := &traffic{}
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		<-stopped
	})
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			tr.mu.Lock()
			if !tr.paused.Load() {
				at := t0.Add(time.Duration(i) * time.Second)
				evs := []schemas.Event{
					click(fmt.Sprintf("a-%d", i), fmt.Sprintf("cust-%d", i%50), schemas.AddToCart, at, "p1"),
					click(fmt.Sprintf("b-%d", i), fmt.Sprintf("cust-%d", (i+25)%50), schemas.AddToCart, at, "p2"),
				}
				if err := p.Write(parts, evs...); err == nil {
					tr.sent.Add(int64(len(evs)))
				}
				if err := p.WriteTick(parts, at.Add(time.Second)); err == nil {
					tr.sent.Add(3 * int64(parts))
				}
			}
			tr.mu.Unlock()
		}
	}()
	return tr
}

// pause stops the traffic after the batch in flight.
func (tr *traffic) pause() {
	tr.mu.Lock()
	tr.paused.Store(true)
	tr.mu.Unlock()
}

func (tr *traffic) resume() { tr.paused.Store(false) }

// readinessWatch polls /readyz every 5 ms and keeps the answers' changes.
type readinessWatch struct {
	mu      sync.Mutex
	changes []string // "200" or "503: body", each when it changed
	done    chan struct{}
	stopped chan struct{}
}

func watchReadiness(h http.Handler) *readinessWatch {
	w := &readinessWatch{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(w.stopped)
		last := ""
		for {
			code, body := get(h, "/readyz")
			now := fmt.Sprint(code)
			if code != http.StatusOK {
				now += ": " + strings.TrimSpace(body)
			}
			if now != last {
				w.mu.Lock()
				w.changes = append(w.changes, now)
				w.mu.Unlock()
				last = now
			}
			select {
			case <-w.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *readinessWatch) stop() {
	close(w.done)
	<-w.stopped
}

func (w *readinessWatch) log() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.changes...)
}

// readyAfterUnready reports a 200 after a 503 caused by a fault (not the
// start's "joining the group").
func (w *readinessWatch) readyAfterUnready() bool {
	unready := false
	for _, c := range w.log() {
		switch {
		case c == "200" && unready:
			return true
		case c != "200":
			unready = true
		}
	}
	return false
}

// get answers a GET of path from h.
func get(h http.Handler, path string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// logLine is a log line's message, level and fields, as the test needs them.
type logLine struct {
	msg    string
	fields map[string]any
}

func errorLines(logs *observer.ObservedLogs) []logLine {
	var out []logLine
	for _, e := range logs.FilterLevelExact(zapcore.ErrorLevel).All() {
		out = append(out, logLine{msg: e.Message, fields: e.ContextMap()})
	}
	return out
}

// checkFencedLine checks that the processor's error lines have exactly one
// about the fencing, naming the instance ID and the fix. kgo's own lines
// (its group loop errors) are not the processor's and are not counted.
func checkFencedLine(t *testing.T, who string, lines []logLine) {
	t.Helper()
	var fenced []logLine
	for _, l := range lines {
		if strings.HasPrefix(l.msg, "fenced") {
			fenced = append(fenced, l)
		}
	}
	if len(fenced) != 1 {
		t.Errorf("%s logged %d error lines about the fencing, want 1: %v", who, len(fenced), lines)
		return
	}
	f := fenced[0].fields
	if f["instance_id"] != "twin" || !strings.Contains(fmt.Sprint(f["fix"]), "instance_id") {
		t.Errorf("%s's fencing line does not name the instance ID and the fix: %v", who, fenced[0])
	}
}

// jsonErrorLines reads the error lines of a child's JSON log.
func jsonErrorLines(t *testing.T, path string) []logLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(l, `{"level":"error"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		msg, _ := m["msg"].(string)
		out = append(out, logLine{msg: msg, fields: m})
	}
	return out
}

// waitExit returns a channel closed when the child has exited.
func waitExit(ch *harness.Child) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for ch.Running() {
			time.Sleep(10 * time.Millisecond)
		}
		close(done)
	}()
	return done
}

// waitGroupCaughtUp waits until the group has committed every input record,
// failing early when died reports the processor that should do it dead.
func waitGroupCaughtUp(t *testing.T, c *harness.Cluster, cfg processor.Config, died func() error) {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := died(); err != nil {
			t.Fatalf("the processor that should catch up died: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ends, err1 := adm.ListEndOffsets(ctx, cfg.Inputs()...)
		committed, err2 := adm.FetchOffsets(ctx, cfg.Group)
		cancel()
		behind := int64(-1)
		if err1 == nil && err2 == nil {
			behind = 0
			ends.Each(func(o kadm.ListedOffset) {
				if got, _ := committed.Lookup(o.Topic, o.Partition); got.At < o.Offset {
					behind += o.Offset - max(got.At, 0)
				}
			})
			if behind == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group not caught up within 90s: %d records behind (-1: unknown; %v %v)", behind, err1, err2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail returns the last lines of a child's log, for a failure message.
func tail(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return "\nlast log lines:\n" + strings.Join(lines[max(0, len(lines)-15):], "\n")
}
