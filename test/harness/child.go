package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/triggerd/triggerd/processor"
)

// FreeAddr returns a loopback address with a port free at the time of the
// call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Child is the processor running as a separate process, so that it can be
// killed with SIGKILL like a crashed pod.
type Child struct {
	t      testing.TB
	Ops    string // host:port of the child's ops endpoint
	Bin    string
	Config string
	Log    *os.File
	Env    []string // extra environment, e.g. TRIGGERD_TEST_FAILPOINTS=...
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // its exit status, valid once done is closed
}

// NewChild prepares a child that runs bin with the config file config,
// writing its output to log; ops is its ops endpoint (see WriteConfig).
func NewChild(t testing.TB, bin, config string, log *os.File, ops string) *Child {
	c := &Child{t: t, Bin: bin, Config: config, Log: log, Ops: ops}
	// A test that stops early (t.Fatal) would otherwise leave the child
	// running: it would go on consuming, and take the CPU of the tests
	// after it.
	t.Cleanup(func() {
		if c.Running() {
			c.Kill()
		}
	})
	return c
}

// Start starts the child.
func (c *Child) Start() {
	c.t.Helper()
	c.cmd = exec.Command(c.Bin, "run", "--config", c.Config)
	c.cmd.Stdout, c.cmd.Stderr = c.Log, c.Log
	// The config file is the whole configuration: no TRIGGERD_ override
	// from the test's environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRIGGERD_") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	c.cmd.Env = append(c.cmd.Env, c.Env...)
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start triggerd: %v", err)
	}
	done := make(chan struct{})
	c.done = done
	go func() {
		c.err = c.cmd.Wait()
		close(done)
	}()
}

// Kill kills the child with SIGKILL, like a crashed pod, and reaps it.
func (c *Child) Kill() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// Stop ends the child with SIGTERM (graceful) and checks it exits 0. It
// first waits for the ops endpoint, which starts after the signal handler
// is installed: a SIGTERM before that would kill rather than stop it.
func (c *Child) Stop() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + c.Ops + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ops endpoint %s did not answer within 30s: %v", c.Ops, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.err != nil {
			c.t.Errorf("triggerd exited with %v after SIGTERM", c.err)
		}
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		c.t.Errorf("triggerd did not exit within 60s of SIGTERM")
	}
}

// Running reports whether the child was started and has not exited.
func (c *Child) Running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Exited reports a child that died by itself.
func (c *Child) Exited() error {
	select {
	case <-c.done:
		if c.err == nil {
			return fmt.Errorf("exited with status 0")
		}
		return c.err
	default:
		return nil
	}
}

// WriteConfig writes a config file for "triggerd run" from cfg (brokers,
// group, instance ID, topics and the event-time settings: idle_advance,
// idle_grace, lateness, tick), with state under dir, the ops endpoint on
// ops, and a rules file holding only cart abandonment (1 h, then 24 h): the
// behaviour the tests' models know.
func WriteConfig(t testing.TB, cfg processor.Config, dir, ops string) string {
	t.Helper()
	return WriteConfigStages(t, cfg, dir, ops, time.Hour, 24*time.Hour)
}

// WriteConfigStages is WriteConfig with the cart rule's stage delays.
func WriteConfigStages(t testing.TB, cfg processor.Config, dir, ops string, stage1, stage2 time.Duration) string {
	t.Helper()
	guarantee := cfg.Guarantee
	if guarantee == "" {
		guarantee = processor.ExactlyOnce
	}
	kafka := fmt.Sprintf(`  guarantee: %s
  idle_advance: %t
  idle_grace: %s
  lateness: %s
  tick: %s
  poll_records: 2000
  transaction_timeout: 10s
  session_timeout: 6s
`, guarantee, cfg.IdleAdvance, cfg.IdleGrace, cfg.Lateness, cfg.Tick)
	if len(cfg.Repartition.Inputs) > 0 {
		kafka += fmt.Sprintf("  repartition:\n    inputs: [%s]\n", strings.Join(cfg.Repartition.Inputs, ", "))
		if cfg.Repartition.Partitions > 0 {
			kafka += fmt.Sprintf("    partitions: %d\n", cfg.Repartition.Partitions)
		}
		if cfg.Repartition.PurgeInterval > 0 {
			kafka += fmt.Sprintf("    purge_interval: %s\n", cfg.Repartition.PurgeInterval)
		}
	}
	return writeRunConfig(t, cfg, dir, ops, stage1, stage2, kafka, "log:\n  level: info\n")
}

// WaitCaughtUp waits until the group has committed every input record, and
// with raw inputs the repartition stage's group every raw record before.
func WaitCaughtUp(t testing.TB, c *Cluster, cfg processor.Config, ch *Child) {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	deadline := time.Now().Add(90 * time.Second)
	behind, lastErr := int64(-1), error(nil)
	for {
		if err := ch.Exited(); err != nil {
			t.Fatalf("triggerd died: %v (log: %s)%s", err, ch.Log.Name(), logProblems(ch.Log.Name()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// The repartition stage's group first, then the workers': once
		// the stage has committed every raw record, the internal topics'
		// ends listed after hold them all.
		behind, lastErr = groupBehind(ctx, adm, cfg.RepartitionGroup(), cfg.RawInputs())
		if lastErr == nil && behind == 0 {
			behind, lastErr = groupBehind(ctx, adm, cfg.Group, cfg.Inputs())
		}
		cancel()
		if lastErr == nil && behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			// Say what went wrong here too: the log is kept (WorkDir),
			// but the failure message is what a reader sees first.
			t.Fatalf("group not caught up within 90s: %d records behind (-1: unknown), last check error %v (log: %s)%s%s",
				behind, lastErr, ch.Log.Name(), logProblems(ch.Log.Name()), ch.dumpStacks())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// groupBehind is how many records of topics group has not committed yet
// (0 when topics is empty).
func groupBehind(ctx context.Context, adm *kadm.Client, group string, topics []string) (int64, error) {
	if len(topics) == 0 {
		return 0, nil
	}
	ends, err1 := adm.ListEndOffsets(ctx, topics...)
	committed, err2 := adm.FetchOffsets(ctx, group)
	if err := errors.Join(err1, err2); err != nil {
		return -1, err
	}
	var behind int64
	ends.Each(func(o kadm.ListedOffset) {
		got, _ := committed.Lookup(o.Topic, o.Partition)
		if got.At < o.Offset {
			behind += o.Offset - max(got.At, 0)
		}
	})
	return behind, nil
}

// dumpStacks makes a child that is stuck print its goroutines (Go's runtime
// does on SIGQUIT, and exits) and returns the log's last info lines and the
// goroutines in the processor's code and in kgo's group loop, for a failure
// message.
func (c *Child) dumpStacks() string {
	if !c.Running() {
		return ""
	}
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.Kill()
	}
	data, err := os.ReadFile(c.Log.Name())
	if err != nil {
		return fmt.Sprintf("\n(reading the log: %v)", err)
	}
	text := string(data)
	dump := ""
	if i := strings.Index(text, "\ngoroutine "); i >= 0 {
		text, dump = text[:i], text[i+1:]
	}
	var info []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, `{"level":"info"`) {
			info = append(info, l)
		}
	}
	info = info[max(0, len(info)-10):]
	var stuck []string
	for _, g := range strings.Split(dump, "\n\n") {
		// The processor's goroutines, and kgo's group loop (joining,
		// fetching the group's offsets).
		if strings.Contains(g, "triggerd/triggerd/processor.") || strings.Contains(g, "kgo.(*groupConsumer)") {
			lines := strings.Split(g, "\n")
			lines = lines[:min(len(lines), 24)]
			for i, l := range lines {
				if j := strings.Index(l, " fp="); j > 0 {
					lines[i] = l[:j] // the frame's pointers: noise here
				}
			}
			stuck = append(stuck, strings.Join(lines, "\n"))
		}
	}
	return fmt.Sprintf("\nlast %d info lines of the log:\n%s\ngoroutines of the processor and kgo's group at SIGQUIT (%d):\n%s",
		len(info), strings.Join(info, "\n"), len(stuck), strings.Join(stuck, "\n\n"))
}

// withoutStacktrace drops the stacktrace field zap adds to error lines (the
// last one, kilobytes of frames of the logging call), keeping the rest of
// the line whole.
func withoutStacktrace(l string) string {
	if i := strings.Index(l, `,"stacktrace":"`); i >= 0 && strings.HasSuffix(l, `"}`) {
		return l[:i] + "}"
	}
	return l
}

// logProblems returns the last warnings and errors of a processor log, for
// a failure message: at most 20 lines, each whole (a cut line loses the
// fields at its end, which say what the processor waited for).
func logProblems(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("\n(reading the log: %v)", err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, `{"level":"warn"`) || strings.HasPrefix(l, `{"level":"error"`) {
			lines = append(lines, withoutStacktrace(l))
		}
	}
	if len(lines) == 0 {
		return "\nno warnings or errors in the log"
	}
	n := len(lines)
	lines = lines[max(0, n-20):]
	return fmt.Sprintf("\nlast %d of the log's %d warnings and errors:\n%s", len(lines), n, strings.Join(lines, "\n"))
}
