package system

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestRebalance runs the workload while the group grows from one instance
// to three and shrinks back to one, again and again, so that partitions and
// their state (customers, timers, held records) move between processes
// through the changelog. Every expected trigger must arrive exactly once.
func TestRebalance(t *testing.T) { runRebalance(t, newScenario(t, "rebalance")) }

// TestRebalanceDefaultConfig is TestRebalance in the default configuration
// (newDefaultConfigScenario).
func TestRebalanceDefaultConfig(t *testing.T) {
	runRebalance(t, newDefaultConfigScenario(t, "rebalance-default-config"))
}

func runRebalance(t *testing.T, s *scenario) {
	main, others := s.instance("i1"), []string{"i2", "i3"}
	done := s.start()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	pause := func() <-chan time.Time { return time.After(time.Duration(1000+rng.IntN(2000)) * time.Millisecond) }

	main.Start()
	waitReady(t, main)
	var pr produced
	scaleUps, scaleDowns := 0, 0
	deadline := time.Now().Add(10 * time.Minute)
	for running := true; running; {
		if time.Now().After(deadline) {
			t.Fatalf("workload not written within 10 minutes (logs under %s)", s.dir)
		}
		select {
		case pr = <-done:
			running = false
			continue
		case <-pause():
		}
		// 1 → 3
		for _, id := range others {
			s.instance(id).Start()
		}
		for _, id := range others {
			waitReady(t, s.instance(id))
		}
		scaleUps++
		select {
		case pr = <-done:
			running = false
		case <-pause():
		}
		// 3 → 1: a graceful stop, like a scale-down.
		for _, id := range others {
			s.instance(id).Stop()
		}
		scaleDowns++
		if !main.Running() {
			t.Fatalf("instance i1 died: %v (log: %s)", main.Exited(), main.Log.Name())
		}
	}
	if pr.err != nil {
		t.Fatalf("writing the workload: %v", pr.err)
	}
	if scaleUps < 2 {
		t.Errorf("the group grew only %d times while the workload ran: too few to prove anything", scaleUps)
	}
	assigned := 0
	for _, id := range append([]string{"i1"}, others...) {
		assigned += logLines(t, s.instance(id), `"msg":"partition assigned"`)
	}
	o := s.finish("i1", pr.model, s.mc)
	t.Logf("%s: events=%d %s scale_ups=%d scale_downs=%d partition_assignments=%d", s.name, s.spec.events, o, scaleUps, scaleDowns, assigned)
	s.check(o)
}
