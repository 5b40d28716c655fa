package system

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestCrash runs 200,000 events over 10,000 customers through a processor
// process that is killed with SIGKILL from outside at random moments, at
// least 10 times, while the workload is written. Every expected trigger must
// arrive exactly once.
//
// TEST_FAILPOINTS adds kills from inside the commit window (the process
// kills itself before End, after the commit and before the state is
// applied, or between two partitions' applies), e.g.
// TEST_FAILPOINTS=before-end=0.05,after-end=0.05,mid-apply=0.05. That mode
// finds a loss that is not fixed yet (see DESIGN.md, "Open: commit-window
// kills"), so it is not the default.
func TestCrash(t *testing.T) {
	needBroker(t)
	c := harness.NewCluster(t)
	const parts = 4
	cfg := c.Topics(t, parts)
	cfg.InstanceID = "crash"
	spec := workloadSpec{
		seed: 20261122, events: 200_000, customers: 10_000,
		start:   time.Now().UTC().Truncate(time.Hour).Add(-40 * 24 * time.Hour),
		spacing: 5 * time.Second, heartbeatEvery: 500, rate: 10_000,
	}
	mc := modelConfig{version: 1, stage1: time.Hour, stage2: 24 * time.Hour, lateness: 0}

	dir := harness.WorkDir(t)
	logPath := filepath.Join(dir, "triggerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ops := harness.FreeAddr(t)
	ch := harness.NewChild(t, harness.BuildTriggerd(t), harness.WriteConfig(t, cfg, dir, ops), logf, ops)
	failpoints := os.Getenv("TEST_FAILPOINTS")
	ch.Env = []string{"TRIGGERD_TEST_FAILPOINTS=" + failpoints}
	if tr := os.Getenv("TEST_TRACE"); tr != "" {
		ch.Env = append(ch.Env, "TRIGGERD_TEST_TRACE="+tr)
	}
	if os.Getenv("TEST_SYNC_WRITES") != "" {
		ch.Env = append(ch.Env, "TRIGGERD_STATE_SYNC_WRITES=true")
	}

	p := harness.NewProducer(t, c, cfg, nil)
	type produced struct {
		model map[schemas.CustomerID][]modelEvent
	}
	done := make(chan produced, 1)
	go func() { done <- produced{spec.produce(t, p, parts)} }()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	external := 0
	var model map[schemas.CustomerID][]modelEvent
	deadline := time.Now().Add(10 * time.Minute)
	// While the workload is written: start the processor, let it work a
	// random while once it is ready, kill it (unless a failpoint did).
	for model == nil {
		if time.Now().After(deadline) {
			t.Fatalf("workload not written within 10 minutes (log: %s)", logPath)
		}
		ch.Start()
		waitReady(t, ops, ch)
		select {
		case pr := <-done:
			model = pr.model
		case <-time.After(time.Duration(rng.IntN(1500)) * time.Millisecond):
		}
		if ch.Exited() == nil {
			ch.Kill()
			external++
		}
	}
	fp := failpointKills(t, logPath)
	if external+fp["total"] < 10 {
		t.Errorf("too few kills to prove anything: external=%d failpoints=%v; want at least 10", external, fp)
	}
	for _, phase := range strings.Split(failpoints, ",") {
		if name, _, _ := strings.Cut(phase, "="); name != "" && fp[name] == 0 {
			t.Errorf("failpoint %s was never hit", name)
		}
	}
	// The last run: no failpoints, catch up, then move event time past
	// every pending timer and wait until none is left.
	ch.Env = ch.Env[1:] // no more failpoints
	ch.Start()
	harness.WaitCaughtUp(t, c, cfg, ch)
	p.Tick(parts, spec.end().Add(27*time.Hour))
	harness.WaitCaughtUp(t, c, cfg, ch)
	waitNoPendingTimers(t, ops, ch)
	ch.Stop()

	want := expectTriggers(mc, model)
	got := harness.NewTriggerReader(t, c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(len(want), 3*time.Second, 3*time.Minute)
	seen := map[string]int{}
	for _, tr := range got {
		seen[tr.ID]++
	}
	lost, duplicated, unexpected := 0, 0, 0
	var examples []string
	for id, what := range want {
		if seen[id] == 0 {
			lost++
			if len(examples) < 5 {
				examples = append(examples, "lost "+what)
			}
		}
	}
	for id, n := range seen {
		if _, ok := want[id]; !ok {
			unexpected += n
		} else if n > 1 {
			duplicated += n - 1
		}
	}
	fp = failpointKills(t, logPath)
	var phases []string
	for ph, n := range fp {
		if ph != "total" {
			phases = append(phases, fmt.Sprintf("%s=%d", ph, n))
		}
	}
	sort.Strings(phases)
	t.Logf("crash: events=%d customers=%d triggers=%d expected=%d lost=%d duplicated=%d unexpected=%d kills=%d (external=%d %s)",
		spec.events, spec.customers, len(got), len(want), lost, duplicated, unexpected, external+fp["total"], external, strings.Join(phases, " "))
	if lost+duplicated+unexpected > 0 {
		t.Errorf("lost %d, duplicated %d, unexpected %d triggers; e.g. %v (log: %s)", lost, duplicated, unexpected, examples, logPath)
	}
	if len(want) < 1000 {
		t.Errorf("the workload expects only %d triggers: too few to prove anything", len(want))
	}
}

// waitReady waits until the child's /readyz says it is in the group and
// cycling, or it died by itself (a failpoint).
func waitReady(t *testing.T, ops string, ch *harness.Child) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for ch.Exited() == nil {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("triggerd not ready within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failpointKills counts the children's own kills by phase from their log.
func failpointKills(t *testing.T, path string) map[string]int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if phase, ok := strings.CutPrefix(sc.Text(), "failpoint: kill at "); ok {
			n[phase]++
			n["total"]++
		}
	}
	return n
}

// waitNoPendingTimers polls the child's metrics until no timer is pending.
func waitNoPendingTimers(t *testing.T, ops string, ch *harness.Child) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := ch.Exited(); err != nil {
			t.Fatalf("triggerd died: %v", err)
		}
		pending, err := pendingTimers(ops)
		if err == nil && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timers still pending after 2 minutes: %v %v", pending, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func pendingTimers(ops string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ops+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	total, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "triggerd_timers_pending{") {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				return -1, err
			}
			total += v
			found = true
		}
	}
	if !found {
		return -1, fmt.Errorf("no triggerd_timers_pending series yet")
	}
	return total, nil
}
