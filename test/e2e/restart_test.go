package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRestartAfterKill kills the processor process with SIGKILL at random
// moments while carts are consumed and while their timers fire, restarts
// it each time, and checks that every pending timer fired: exactly once in
// exactly-once mode (read_committed); at least once, with the same trigger
// ID, in at-least-once mode.
func TestRestartAfterKill(t *testing.T) {
	for _, g := range []processor.Guarantee{processor.ExactlyOnce, processor.AtLeastOnce} {
		t.Run(string(g), func(t *testing.T) { testRestartAfterKill(t, g) })
	}
}

func testRestartAfterKill(t *testing.T, guarantee processor.Guarantee) {
	c := harness.NewCluster(t)
	const parts = 4
	const customers = 300
	cfg := c.Topics(t, parts)
	cfg.Guarantee = guarantee
	dir := harness.WorkDir(t)
	logf, err := os.Create(filepath.Join(dir, "triggerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ops := harness.FreeAddr(t)
	ch := harness.NewChild(t, harness.BuildTriggerd(t), harness.WriteConfig(t, cfg, dir, ops), logf, ops)
	p := harness.NewProducer(t, c, cfg, nil)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 0
	killSoon := func() {
		ch.Start()
		time.Sleep(time.Duration(50+rng.IntN(700)) * time.Millisecond)
		ch.Kill()
		kills++
	}

	t0 := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	var evs []schemas.Event
	for i := range customers {
		evs = append(evs, click(fmt.Sprintf("add-%d", i), fmt.Sprintf("cust-%d", i), schemas.AddToCart, t0.Add(time.Duration(i)*time.Second), "p1"))
	}
	p.Send(parts, evs...)
	for range 4 {
		killSoon()
	}
	ch.Start()
	harness.WaitCaughtUp(t, c, cfg, ch)
	ch.Kill()
	kills++

	// Every cart timer is now pending. Move event time past stage 1 and
	// kill while they fire.
	p.Tick(parts, t0.Add(2*time.Hour))
	for range 3 {
		killSoon()
	}
	ch.Start()
	harness.WaitCaughtUp(t, c, cfg, ch)

	// And past stage 2, with a kill and a graceful stop.
	p.Tick(parts, t0.Add(27*time.Hour))
	ch.Kill()
	kills++
	killSoon()
	ch.Start()
	harness.WaitCaughtUp(t, c, cfg, ch)
	ch.Stop()

	got := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(2*customers, 2*time.Second, 90*time.Second)
	count := map[string]int{}
	for _, tr := range got {
		count[fmt.Sprintf("%s/%d", tr.Customer, tr.Stage)]++
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
	t.Logf("restart: guarantee=%s customers=%d triggers=%d lost=%d duplicated=%d unexpected=%d kills=%d",
		guarantee, customers, len(got), lost, duplicated, unexpected, kills)
	if lost != 0 || unexpected != 0 {
		t.Errorf("after %d kills: %d lost, %d unexpected triggers (log: %s)", kills, lost, unexpected, logf.Name())
	}
	if guarantee == processor.ExactlyOnce {
		if duplicated != 0 {
			t.Errorf("exactly-once: %d duplicated triggers after %d kills (log: %s)", duplicated, kills, logf.Name())
		}
		checkUniqueIDs(t, got)
	}
}
