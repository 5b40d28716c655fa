package system

import (
	"os/exec"
	"testing"
	"time"
)

// TestBrokerRestart runs the workload while the Kafka broker is stopped and
// started again (once cleanly, once with SIGKILL), with its data, on the same
// address. A processor that exits because the broker was gone is restarted,
// as its supervisor would; every expected trigger must arrive exactly once.
func TestBrokerRestart(t *testing.T) { runBrokerRestart(t, newScenario(t, "broker-restart")) }

// TestBrokerRestartDefaultConfig is TestBrokerRestart in the default
// configuration (newDefaultConfigScenario).
func TestBrokerRestartDefaultConfig(t *testing.T) {
	runBrokerRestart(t, newDefaultConfigScenario(t, "broker-restart-default-config"))
}

func runBrokerRestart(t *testing.T, s *scenario) {
	// Slower, so the workload spans both restarts (a JVM start takes seconds).
	s.spec.rate = 4000
	ch := s.instance("i1")
	done := s.start()
	ch.Start()
	waitReady(t, ch)

	var pr produced
	restarts, exits := 0, 0
	how := []string{"term", "kill"}
	deadline := time.Now().Add(10 * time.Minute)
	for running := true; running; {
		if time.Now().After(deadline) {
			t.Fatalf("workload not written within 10 minutes (logs under %s)", s.dir)
		}
		select {
		case pr = <-done:
			running = false
		case <-time.After(3 * time.Second):
		}
		if !ch.Running() {
			t.Logf("the processor exited (%v); restarting it", ch.Exited())
			exits++
			ch.Start()
		}
		if running && restarts < len(how) {
			// The workload's upstream is held across the stop, clean or
			// not: see harness.Producer.Hold (its duplicates are not the
			// processor's to prevent).
			release := s.p.Hold()
			out, err := exec.Command("../kafka/broker.sh", "restart", how[restarts]).CombinedOutput()
			release()
			if err != nil {
				t.Fatalf("restarting the broker: %v\n%s", err, out)
			}
			t.Logf("%s", out)
			restarts++
		}
	}
	if pr.err != nil {
		t.Fatalf("writing the workload: %v", pr.err)
	}
	if restarts < 2 {
		t.Errorf("the broker restarted only %d times while the workload ran", restarts)
	}
	if dups := s.inputDuplicates(); len(dups) > 0 {
		t.Fatalf("the input topics hold %d records appended twice by the test's own producer (e.g. %v): "+
			"the reference model cannot match; see harness.Producer.Hold", len(dups), dups[:min(3, len(dups))])
	}
	o := s.finish("i1", pr.model, s.mc)
	t.Logf("%s: events=%d %s broker_restarts=%d processor_exits=%d", s.name, s.spec.events, o, restarts, exits)
	s.check(o)
}
