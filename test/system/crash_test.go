package system

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/processor"
)

// defaultFailpoints make the processor kill itself inside the commit window:
// before End, after the commit and before the state is applied, and between
// two partitions' applies. Each run of the processor arms one of them, in
// turn, with this probability per cycle, so that every phase is hit in
// every test run.
var defaultFailpoints = []string{"before-end=0.1", "after-end=0.1", "mid-apply=0.1"}

// TestCrash runs the workload (200,000 events over 10,000 customers) through
// a processor process that is killed with SIGKILL, from outside at random
// moments and from inside the commit window by failpoints, at least 10 times,
// and restarted each time. Every expected trigger must arrive exactly once.
// TEST_FAILPOINTS replaces the failpoints with a spec armed in every run
// ("none": external kills only).
func TestCrash(t *testing.T) { runCrash(t, "crash", processor.ExactlyOnce) }

// TestCrashAtLeastOnce is TestCrash in at-least-once mode: triggers may be
// written twice (same IDs) but none is lost, and the state stays exact (a
// batch a crash cut short in the changelog is not applied; see
// processor/atleastonce.go).
func TestCrashAtLeastOnce(t *testing.T) { runCrash(t, "crash-at-least-once", processor.AtLeastOnce) }

// TestCrashDefaultConfig is TestCrash in the default configuration
// (newDefaultConfigScenario): idle_advance on, no heartbeats, the workload
// stamped as it is written.
func TestCrashDefaultConfig(t *testing.T) {
	runCrashScenario(t, newDefaultConfigScenario(t, "crash-default-config"), processor.ExactlyOnce)
}

func runCrash(t *testing.T, name string, guarantee processor.Guarantee) {
	runCrashScenario(t, newScenario(t, name), guarantee)
}

func runCrashScenario(t *testing.T, s *scenario, guarantee processor.Guarantee) {
	name := s.name
	s.cfg.InstanceID = "crash"
	s.cfg.Guarantee = guarantee
	s.allowDuplicates = guarantee == processor.AtLeastOnce
	runs := defaultFailpoints // what run i arms: runs[i%len(runs)]
	if s.failpoints != nil {
		runs = s.failpoints
	}
	switch env := os.Getenv("TEST_FAILPOINTS"); env {
	case "":
	case "none":
		runs = []string{""}
	default:
		runs = []string{env}
	}
	ch := s.instance("crash")
	ch.Env = []string{""} // [0] is the failpoint spec of the run
	if tr := os.Getenv("TEST_TRACE"); tr != "" {
		ch.Env = append(ch.Env, "TRIGGERD_TEST_TRACE="+tr)
	}
	if os.Getenv("TEST_SYNC_WRITES") != "" {
		ch.Env = append(ch.Env, "TRIGGERD_STATE_SYNC_WRITES=true")
	}
	done := s.start()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	external := 0
	var pr produced
	deadline := time.Now().Add(10 * time.Minute)
	// While the workload is written: start the processor, let it work a
	// random while once it is ready, kill it (unless a failpoint did).
	for run, running := 0, true; running; run++ {
		if time.Now().After(deadline) {
			t.Fatalf("workload not written within 10 minutes (logs under %s)", s.dir)
		}
		ch.Env[0] = "TRIGGERD_TEST_FAILPOINTS=" + runs[run%len(runs)]
		ch.Start()
		waitReady(t, ch)
		select {
		case pr = <-done:
			running = false
		case <-time.After(time.Duration(rng.IntN(1500)) * time.Millisecond):
		}
		if ch.Running() {
			ch.Kill()
			external++
		}
	}
	if pr.err != nil {
		t.Fatalf("writing the workload: %v", pr.err)
	}
	fp := logCount(t, ch, "failpoint: kill at ")
	if external+fp["total"] < 10 {
		t.Errorf("too few kills to prove anything: external=%d failpoints=%v; want at least 10", external, fp)
	}
	for _, spec := range runs {
		for _, phase := range strings.Split(spec, ",") {
			if name, _, _ := strings.Cut(phase, "="); name != "" && fp[name] == 0 {
				t.Errorf("failpoint %s was never hit", name)
			}
		}
	}
	// The last run has no failpoints.
	ch.Env = ch.Env[1:]
	o := s.finish("crash", pr.model, s.mc)
	fp = logCount(t, ch, "failpoint: kill at ")
	t.Logf("%s: events=%d %s kills=%d (external=%d %s)", name, s.spec.events, o, external+fp["total"], external, phases(fp))
	s.check(o)
}
