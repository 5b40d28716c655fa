package system

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor/rescale"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// rescaleLayouts are the partition counts the group goes through.
var rescaleLayouts = []int32{4, 8, 3}

// TestRescale runs the workload with every input raw
// (kafka.repartition.inputs: the producers keep their topics and
// partitions, so the cut-over is exact) while the group goes 4 → 8 → 3
// partitions, in the default configuration (newDefaultConfigScenario:
// idle_advance on, events stamped as they are written, no heartbeats), in
// which raw inputs are ordered exactly. Each layout's processor is
// SIGKILLed once and restarted, then stopped (SIGTERM) once it has
// committed a customer record; `triggerd rescale` runs as a process of its
// own and is SIGKILLed at random points, then run again to the end; the
// next layout starts with the settings the rescale names. The workload goes on being written while the group is stopped:
// the last records of every partition may be held at each stop, and the
// internal topics may hold records the workers had not read: the rescale
// carries both. Every trigger ID and every customer's final state must
// equal the reference model.
func TestRescale(t *testing.T) {
	s := newDefaultConfigScenario(t, "rescale")
	s.spec.events, s.spec.customers, s.spec.rate = 60_000, 6_000, 1_500
	s.cfg.Repartition.Inputs = []string{"clickstream", "transactions", "profiles"}
	s.cfg.Repartition.Partitions = rescaleLayouts[0]
	s.rawTopics(rescaleRawPartitions)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	done := s.start()

	var (
		summaries           []string
		rescaleKills, kills int
		conf                string
	)
	for i, m := range rescaleLayouts {
		if i > 0 {
			sum, killed := s.rescaleTo(conf, m, rng)
			summaries, rescaleKills = append(summaries, sum), rescaleKills+killed
			s.cfg.Topics.Changelog = rescale.NextName(s.cfg.Topics.Changelog)
			s.cfg.Repartition.Partitions = m
		}
		id := fmt.Sprintf("p%d", m)
		ch := s.instance(id)
		// The instance's configuration names every input raw, with
		// the internal topics' partition count (s.cfg).
		conf = filepath.Join(s.dir, id, "config.yaml")
		ch.Start()
		waitReady(t, ch)
		time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
		ch.Kill()
		kills++
		ch.Start()
		waitReady(t, ch)
		if i < len(rescaleLayouts)-1 {
			time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
			// The rescale must find customers to move: a layout
			// stopped before its first applied cycle committed
			// (its records all held, waiting for every raw
			// partition to show one) proves nothing of the move.
			s.waitCustomerCommitted()
			ch.Stop()
		}
	}
	var pr produced
	select {
	case pr = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("workload not written within 5 minutes (logs under %s)", s.dir)
	}
	if pr.err != nil {
		t.Fatalf("writing the workload: %v", pr.err)
	}
	// The final tick and the state check see the last layout.
	s.parts = rescaleLayouts[len(rescaleLayouts)-1]
	o := s.finish(fmt.Sprintf("p%d", s.parts), pr.model, s.mc)
	t.Logf("%s: events=%d %s layouts=%v kills=%d rescale_kills=%d (%s)", s.name, s.spec.events, o,
		rescaleLayouts, kills, rescaleKills, strings.Join(summaries, "; "))
	for _, sum := range summaries {
		// Customers applied before a rescale must be moved by it: a
		// rescale that moves only held records proves nothing of
		// the state's move.
		if strings.Contains(sum, " customers=0 ") {
			t.Errorf("a rescale moved no customer (%s): the layout before it applied nothing", sum)
		}
	}
	if rescaleKills < len(rescaleLayouts)-1 {
		t.Errorf("only %d rescale runs were killed: want one per rescale at least", rescaleKills)
	}
	s.check(o)
}

// waitCustomerCommitted waits until the changelog holds a committed
// customer record: the running layout has applied an event.
func (s *scenario) waitCustomerCommitted() {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := s.c.Client(t, kgo.ConsumeTopics(s.cfg.Topics.Changelog), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no customer record committed to %s within 60s of the layout's start (logs under %s)", s.cfg.Topics.Changelog, s.dir)
		}
		for _, r := range fetches.Records() {
			if k, err := state.ParseChangelogKey(r.Key); err == nil && k.Kind == state.RecordCustomer {
				return
			}
		}
	}
}

// rescaleRawPartitions is the raw topics' partition count: prime to every
// layout's, so each internal partition is fed by every raw partition. With
// a raw partition that feeds none of an internal partition's customers (the
// raw topics partitioned as the internal ones), that partition's order
// bound stays unknown and under a steady load its records wait for the
// workload to pause (processor/repartition_order.go).
const rescaleRawPartitions = 5

// rawTopics replaces the scenario's inputs by raw topics of n partitions,
// which the workload is written to (murmur2 of the customer, as for a
// co-partitioned input, over n).
func (s *scenario) rawTopics(n int32) {
	t := s.t
	for _, name := range []*string{&s.cfg.Topics.Clickstream, &s.cfg.Topics.Transactions, &s.cfg.Topics.Profiles} {
		*name += "-raw"
	}
	adm := kadm.NewClient(s.c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw := []string{s.cfg.Topics.Clickstream, s.cfg.Topics.Transactions, s.cfg.Topics.Profiles}
	for _, topic := range raw {
		if _, err := adm.CreateTopic(ctx, n, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	harness.WaitTopics(t, ctx, adm, n, raw...)
	s.p = harness.NewProducer(t, s.c, s.cfg, nil)
	s.write = func() (map[schemas.CustomerID][]modelEvent, error) { return s.spec.produce(s.p, n, nil) }
}

// rescaleTo runs `triggerd rescale --config conf --to m` as a process,
// SIGKILLs it at random points up to three times, then lets a run finish.
// A refusal because the stopped instances are still group members (static
// membership, until the session timeout) is retried. It returns the
// summary line and how many runs were killed while running.
func (s *scenario) rescaleTo(conf string, m int32, rng *rand.Rand) (string, int) {
	t := s.t
	killed := 0
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("rescale to %d not done within 2 minutes (%d runs killed)", m, killed)
		}
		cmd := exec.Command(s.bin, "rescale", "--config", conf, "--to", fmt.Sprint(m))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		if killed < 3 {
			select {
			case err = <-exited:
			case <-time.After(time.Duration(30+rng.IntN(1200)) * time.Millisecond):
				_ = cmd.Process.Kill()
				err = <-exited
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					killed++
					continue
				}
			}
		} else {
			select {
			case err = <-exited:
			case <-time.After(90 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Fatalf("rescale to %d hung for 90s; stderr:\n%s", m, stderr.String())
			}
		}
		out := stderr.String()
		if err == nil {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "rescale: customers=") {
				t.Fatalf("rescale to %d: no summary line; stderr:\n%s", m, out)
			}
			t.Logf("rescale to %d, the run that finished:\n%s", m, out)
			return last, killed
		}
		if strings.Contains(out, "refused") && (strings.Contains(out, "member") || strings.Contains(out, "transaction is open")) {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		t.Fatalf("rescale to %d: %v\nstdout:\n%s\nstderr:\n%s", m, err, stdout.String(), out)
	}
}
