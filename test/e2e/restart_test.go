package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
)

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// buildTriggerd builds the binary once per test into a temp dir.
func buildTriggerd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "triggerd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/triggerd/triggerd/cmd/triggerd")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// child is the processor running as a separate process, so that it can be
// killed with SIGKILL like a crashed pod.
type child struct {
	t      *testing.T
	ops    string // host:port of the child's ops endpoint
	bin    string
	config string
	log    *os.File
	cmd    *exec.Cmd
	done   chan error
}

func (c *child) start() {
	c.t.Helper()
	c.cmd = exec.Command(c.bin, "run", "--config", c.config)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	// The config file is the whole configuration: no TRIGGERD_ override
	// from the test's environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRIGGERD_") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start triggerd: %v", err)
	}
	c.done = make(chan error, 1)
	go func() { c.done <- c.cmd.Wait() }()
}

func (c *child) kill() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop ends the child with SIGTERM (graceful) and checks it exits 0. It
// first waits for the ops endpoint, which starts after the signal handler
// is installed: a SIGTERM before that would kill rather than stop it.
func (c *child) stop() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + c.ops + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ops endpoint %s did not answer within 30s: %v", c.ops, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Errorf("triggerd exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		c.t.Errorf("triggerd did not exit within 60s of SIGTERM")
	}
}

// exited reports a child that died by itself.
func (c *child) exited() error {
	select {
	case err := <-c.done:
		if err == nil {
			err = fmt.Errorf("exited with status 0")
		}
		return err
	default:
		return nil
	}
}

func writeChildConfig(t *testing.T, cfg processor.Config, dir, ops string) string {
	t.Helper()
	y := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  instance_id: restart-test
  topics:
    clickstream: %s
    transactions: %s
    profiles: %s
    triggers: %s
    dead_letter: %s
    changelog: %s
  replication_factor: 1
  start_from: earliest
  idle_advance: false
  lateness: 0s
  tick: 50ms
  transaction_timeout: 10s
  session_timeout: 6s
state:
  dir: %s
ops:
  addr: %s
log:
  level: warn
`, strings.Join(cfg.Brokers, ", "), cfg.Group, cfg.Topics.Clickstream, cfg.Topics.Transactions, cfg.Topics.Profiles,
		cfg.Topics.Triggers, cfg.Topics.DeadLetter, cfg.Topics.Changelog, filepath.Join(dir, "state"), ops)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitCaughtUp waits until the group has committed every input record.
func waitCaughtUp(t *testing.T, c *cluster, cfg processor.Config, ch *child) {
	t.Helper()
	adm := kadm.NewClient(c.client(t))
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := ch.exited(); err != nil {
			t.Fatalf("triggerd died: %v (log: %s)", err, ch.log.Name())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ends, err1 := adm.ListEndOffsets(ctx, cfg.Inputs()...)
		committed, err2 := adm.FetchOffsets(ctx, cfg.Group)
		cancel()
		if err1 == nil && err2 == nil {
			behind := int64(0)
			ends.Each(func(o kadm.ListedOffset) {
				got, _ := committed.Lookup(o.Topic, o.Partition)
				if got.At < o.Offset {
					behind += o.Offset - max(got.At, 0)
				}
			})
			if behind == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group not caught up within 90s (log: %s)", ch.log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestartAfterKill kills the processor process with SIGKILL at random
// moments while carts are consumed and while their timers fire, restarts
// it each time, and checks that every pending timer fired exactly once
// (exactly-once mode, read_committed).
func TestRestartAfterKill(t *testing.T) {
	c := newCluster(t)
	const parts = 4
	const customers = 300
	cfg := c.topics(t, parts)
	dir := os.Getenv("TEST_KEEP_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	logf, err := os.Create(filepath.Join(dir, "triggerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ops := freeAddr(t)
	ch := &child{t: t, bin: buildTriggerd(t), config: writeChildConfig(t, cfg, dir, ops), log: logf, ops: ops}
	p := newProducer(t, c, cfg, nil)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 0
	killSoon := func() {
		ch.start()
		time.Sleep(time.Duration(50+rng.IntN(700)) * time.Millisecond)
		ch.kill()
		kills++
	}

	t0 := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	var evs []schemas.Event
	for i := range customers {
		evs = append(evs, click(fmt.Sprintf("add-%d", i), fmt.Sprintf("cust-%d", i), schemas.AddToCart, t0.Add(time.Duration(i)*time.Second), "p1"))
	}
	p.send(parts, evs...)
	for range 4 {
		killSoon()
	}
	ch.start()
	waitCaughtUp(t, c, cfg, ch)
	ch.kill()
	kills++

	// Every cart timer is now pending. Move event time past stage 1 and
	// kill while they fire.
	p.tick(parts, t0.Add(2*time.Hour))
	for range 3 {
		killSoon()
	}
	ch.start()
	waitCaughtUp(t, c, cfg, ch)

	// And past stage 2, with a kill and a graceful stop.
	p.tick(parts, t0.Add(27*time.Hour))
	ch.kill()
	kills++
	killSoon()
	ch.start()
	waitCaughtUp(t, c, cfg, ch)
	ch.stop()

	got := newTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).read(2*customers, 2*time.Second, 90*time.Second)
	count := map[string]int{}
	for _, tr := range got {
		count[fmt.Sprintf("%s/%d", tr.customer, tr.stage)]++
	}
	lost, duplicated := 0, 0
	for i := range customers {
		for stage := 1; stage <= 2; stage++ {
			switch n := count[fmt.Sprintf("cust-%d/%d", i, stage)]; {
			case n == 0:
				lost++
			case n > 1:
				duplicated += n - 1
			}
		}
	}
	unexpected := len(got) - (2*customers - lost) - duplicated
	t.Logf("restart: customers=%d triggers=%d lost=%d duplicated=%d unexpected=%d kills=%d", customers, len(got), lost, duplicated, unexpected, kills)
	if lost != 0 || duplicated != 0 || unexpected != 0 {
		t.Errorf("after %d kills: %d lost, %d duplicated, %d unexpected triggers (log: %s)", kills, lost, duplicated, unexpected, logf.Name())
	}
	checkUniqueIDs(t, got)
}
