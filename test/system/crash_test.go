package system

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// defaultFailpoints make the processor kill itself inside the commit window:
// before End, after the commit and before the state is applied, and between
// two partitions' applies, each with this probability per cycle.
const defaultFailpoints = "before-end=0.01,after-end=0.01,mid-apply=0.01"

// TestCrash runs the workload (200,000 events over 10,000 customers) through
// a processor process that is killed with SIGKILL, from outside at random
// moments and from inside the commit window by failpoints, at least 10 times,
// and restarted each time. Every expected trigger must arrive exactly once.
// TEST_FAILPOINTS replaces the failpoints ("none": external kills only).
func TestCrash(t *testing.T) {
	s := newScenario(t, "crash")
	s.cfg.InstanceID = "crash"
	failpoints := os.Getenv("TEST_FAILPOINTS")
	if failpoints == "" {
		failpoints = defaultFailpoints
	} else if failpoints == "none" {
		failpoints = ""
	}
	ch := s.instance("crash")
	ch.Env = []string{"TRIGGERD_TEST_FAILPOINTS=" + failpoints}
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
	for running := true; running; {
		if time.Now().After(deadline) {
			t.Fatalf("workload not written within 10 minutes (logs under %s)", s.dir)
		}
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
	for _, phase := range strings.Split(failpoints, ",") {
		if name, _, _ := strings.Cut(phase, "="); name != "" && fp[name] == 0 {
			t.Errorf("failpoint %s was never hit", name)
		}
	}
	// The last run has no failpoints.
	ch.Env = ch.Env[1:]
	o := s.finish("crash", pr.model, cartModel)
	fp = logCount(t, ch, "failpoint: kill at ")
	t.Logf("crash: events=%d %s kills=%d (external=%d %s)", s.spec.events, o, external+fp["total"], external, phases(fp))
	s.check(o)
}
