//go:build rescale_scenario

// TestRescale is not in make test yet: it fails. Every input is raw here,
// and with idle_advance off (the scenario's heartbeats) an internal topic's
// event-time progress is still the latest time it has shown, which does not
// bound what its other raw partitions may still deliver; runs with a fast
// rescale applied a purchase before an earlier cart (unexpected triggers,
// state mismatches). Run it with
// go test -tags rescale_scenario -run TestRescale ./test/system/
// (TRIGGERD_KAFKA_BROKERS set) once raw inputs order exactly in that mode.

package system

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/triggerd/triggerd/processor/rescale"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// rescaleLayouts are the partition counts the group goes through.
var rescaleLayouts = []int32{4, 8, 3}

// TestRescale runs the workload with every input raw
// (kafka.repartition.inputs: the producers keep their topics and
// partitions, so the cut-over is exact) while the group goes 4 → 8 → 3
// partitions. Each layout's processor is SIGKILLed once and restarted, then
// stopped (SIGTERM); `triggerd rescale` runs as a process of its own and
// is SIGKILLed at random points, then run again to the end; the next
// layout starts with the settings the rescale names. With idle_advance off
// the last records of every partition are held at each stop, and the
// internal topics hold records the workers had not read: the rescale
// carries both. Every trigger ID and every customer's final state must
// equal the reference model.
func TestRescale(t *testing.T) {
	s := newScenario(t, "rescale")
	s.spec.events, s.spec.customers, s.spec.rate = 60_000, 6_000, 1_500
	s.cfg.Repartition.Inputs = []string{"clickstream", "transactions", "profiles"}
	s.cfg.Repartition.Partitions = rescaleLayouts[0]
	rawParts := s.parts // the raw topics keep theirs
	s.spec.heartbeat = func(at time.Time) error { return rescaleHeartbeat(s.p, rawParts, at) }
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
		conf = withRawInputs(t, filepath.Join(s.dir, id, "config.yaml"), m)
		ch.Start()
		waitReady(t, ch)
		time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
		ch.Kill()
		kills++
		ch.Start()
		waitReady(t, ch)
		if i < len(rescaleLayouts)-1 {
			time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
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
	if rescaleKills < len(rescaleLayouts)-1 {
		t.Errorf("only %d rescale runs were killed: want one per rescale at least", rescaleKills)
	}
	s.check(o)
}

// withRawInputs declares every input raw in the configuration file, with
// the internal topics' partition count, and returns its path.
func withRawInputs(t *testing.T, path string, partitions int32) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const after = "  start_from: earliest\n"
	if !bytes.Contains(b, []byte(after)) {
		t.Fatalf("%s: no %q line to add the repartition settings after", path, after)
	}
	b = bytes.Replace(b, []byte(after), fmt.Appendf(nil, "%s  repartition:\n    inputs: [clickstream, transactions, profiles]\n    partitions: %d\n",
		after, partitions), 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rescaleHeartbeat writes a heartbeat on every input for every internal
// partition of every layout: a ticker customer of each partition under
// each count, on the raw partitions in turn. The stage routes each to its
// partition, so event time advances everywhere whichever layout runs.
func rescaleHeartbeat(p *harness.Producer, rawParts int32, at time.Time) error {
	var evs []schemas.Event
	for _, n := range rescaleLayouts {
		for q := range n {
			cust := schemas.CustomerID(harness.Ticker(q, n))
			for _, src := range []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile} {
				ev := schemas.Event{Source: src, ID: fmt.Sprintf("tick-%d-%d-%d-%d", n, q, src, at.UnixMilli()),
					Customer: cust, Type: "page_view", Time: at}
				switch src {
				case schemas.SourceTransaction:
					ev.Type = "heartbeat"
				case schemas.SourceProfile:
					ev.Type = schemas.ProfileUpdate
				}
				evs = append(evs, ev)
			}
		}
	}
	// Write spreads by customer over the raw partitions: any partition
	// will do for a raw input.
	return p.Write(rawParts, evs...)
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
