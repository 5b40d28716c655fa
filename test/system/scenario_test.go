package system

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// A scenario is one system test: the standard workload written while the
// test disturbs the processors (kills, rebalances, a broker restart), then a
// last clean run that catches up and fires every pending timer, then the
// committed triggers compared with the reference model.
type scenario struct {
	t     *testing.T
	name  string
	c     *harness.Cluster
	cfg   processor.Config
	spec  workloadSpec
	parts int32
	bin   string
	dir   string
	kids  map[string]*harness.Child // by instance ID
	p     *harness.Producer
	extra func(*schemas.Event) []poison // poison records to write after an event (poison scenario)
	// allowDuplicates accepts a trigger written more than once (with the
	// same ID): at-least-once mode.
	allowDuplicates bool
	// mc is the rule the model knows; the processors run it.
	mc modelConfig
	// live: the default configuration (see newDefaultConfigScenario).
	live bool
	// write, if set, writes the workload in place of spec.produce (the
	// raw clickstream of the repartition scenario).
	write func() (map[schemas.CustomerID][]modelEvent, error)
	// failpoints, if set, replace defaultFailpoints in the crash scenario.
	failpoints []string
}

// newScenario creates the topics and the producer. Instances are started
// with s.instance.
func newScenario(t *testing.T, name string) *scenario {
	needBroker(t)
	c := harness.NewCluster(t)
	const parts = 4
	s := &scenario{
		t: t, name: name, c: c, cfg: c.Topics(t, parts), parts: parts,
		spec: workloadSpec{
			seed: 20261122, events: 200_000, customers: 10_000,
			start:   time.Now().UTC().Truncate(time.Hour).Add(-40 * 24 * time.Hour),
			spacing: 5 * time.Second, heartbeatEvery: 500, rate: 10_000,
		},
		bin: harness.BuildTriggerd(t), dir: harness.WorkDir(t), kids: map[string]*harness.Child{},
		mc: cartModel,
	}
	s.p = harness.NewProducer(t, c, s.cfg, nil)
	return s
}

// newDefaultConfigScenario is newScenario in the configuration a new user
// runs: idle_advance on, the default idle grace, lateness and tick, and no
// heartbeats. The workload is stamped as it is written, as live producers
// stamp theirs, and the cart rule's stages come seconds apart (the model's
// liveCartModel), so that its timers fire while the workload is written and
// the processors are disturbed.
func newDefaultConfigScenario(t *testing.T, name string) *scenario {
	s := newScenario(t, name)
	def := processor.DefaultConfig()
	s.cfg.IdleAdvance, s.cfg.IdleGrace, s.cfg.Lateness, s.cfg.Tick = def.IdleAdvance, def.IdleGrace, def.Lateness, def.Tick
	s.spec.live, s.spec.heartbeatEvery = true, 0
	s.mc = liveCartModel
	s.live = true
	return s
}

// instance returns the processor instance with this instance ID, created on
// first use with its own state directory, ops address and log file. It is
// not started.
func (s *scenario) instance(id string) *harness.Child {
	if ch := s.kids[id]; ch != nil {
		return ch
	}
	dir := filepath.Join(s.dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "triggerd.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { logf.Close() })
	cfg := s.cfg
	cfg.InstanceID = id
	ops := harness.FreeAddr(s.t)
	ch := harness.NewChild(s.t, s.bin, harness.WriteConfigStages(s.t, cfg, dir, ops, s.mc.stage1, s.mc.stage2), logf, ops)
	s.kids[id] = ch
	return ch
}

// produced is what the background writer hands back: the model's view of
// every customer's events, or the reason it could not write them.
type produced struct {
	model map[schemas.CustomerID][]modelEvent
	err   error
}

// start writes the workload in the background.
func (s *scenario) start() <-chan produced {
	done := make(chan produced, 1)
	go func() {
		write := s.write
		if write == nil {
			write = func() (map[schemas.CustomerID][]modelEvent, error) { return s.spec.produce(s.p, s.parts, s.extra) }
		}
		m, err := write()
		done <- produced{m, err}
	}()
	return done
}

// outcome is what a scenario found.
type outcome struct {
	got, want                    int
	lost, duplicated, unexpected int
	examples                     []string
	customers, stateMismatch     int     // customers checked (twice: changelog and Pebble), and those that differ
	late                         float64 // records the last instance counted late (triggerd_input_late_events_total)
	stateExamples                []string
}

// String is the part of a scenario's summary line every scenario shares.
func (o outcome) String() string {
	return fmt.Sprintf("triggers=%d expected=%d lost=%d duplicated=%d unexpected=%d customers=%d state_mismatch=%d late_events=%g",
		o.got, o.want, o.lost, o.duplicated, o.unexpected, o.customers, o.stateMismatch, o.late)
}

// finish runs the last clean instance (main) until every input record is
// committed and no timer is pending, stops every instance, and compares the
// committed triggers with the model.
func (s *scenario) finish(main string, model map[schemas.CustomerID][]modelEvent, mc modelConfig) outcome {
	t := s.t
	ch := s.instance(main)
	if ch.Exited() != nil || !ch.Running() {
		ch.Start()
	}
	harness.WaitCaughtUp(t, s.c, s.cfg, ch)
	if s.live {
		// Event time follows the wall clock: wait until the last
		// event's timers are due and the watermark has passed them.
		var last time.Time
		for _, evs := range model {
			for _, e := range evs {
				if e.at.After(last) {
					last = e.at
				}
			}
		}
		time.Sleep(time.Until(last.Add(mc.stage1 + mc.stage2 + mc.lateness + s.cfg.IdleGrace + 2*time.Second)))
	} else {
		s.p.Tick(s.parts, s.spec.end().Add(mc.stage1+mc.stage2+2*time.Hour))
	}
	harness.WaitCaughtUp(t, s.c, s.cfg, ch)
	waitNoPendingTimers(t, ch.Ops, ch)
	late, _ := metricSum(ch.Ops, "triggerd_input_late_events_total{")
	for _, k := range s.kids {
		if k.Running() {
			k.Stop()
		}
	}

	want, final := expect(mc, model)
	got := harness.NewTriggerReader(t, s.c, s.cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(len(want), 3*time.Second, 3*time.Minute)
	seen := map[string]int{}
	for _, tr := range got {
		seen[tr.ID]++
	}
	o := outcome{got: len(got), want: len(want), late: late}
	for id, what := range want {
		if seen[id] == 0 {
			o.lost++
			if len(o.examples) < 5 {
				o.examples = append(o.examples, "lost "+what)
			}
		}
	}
	for id, n := range seen {
		if _, ok := want[id]; !ok {
			o.unexpected += n
		} else if n > 1 {
			o.duplicated += n - 1
		}
	}
	for _, tr := range got {
		if _, ok := want[tr.ID]; !ok && len(o.examples) < 10 {
			o.examples = append(o.examples, fmt.Sprintf("unexpected %s/%d due %s", tr.Customer, tr.Stage, tr.Due.Format(time.RFC3339Nano)))
		}
	}
	if len(want) < 1000 {
		t.Errorf("the workload expects only %d triggers: too few to prove anything", len(want))
	}
	o.customers = len(final)
	o.stateMismatch, o.stateExamples = s.checkState(main, final)
	return o
}

// check fails the test on any lost, duplicated or unexpected trigger and
// on any customer state that differs from the model.
func (s *scenario) check(o outcome) {
	dups := o.duplicated
	if s.allowDuplicates {
		dups = 0
	}
	if o.lost+dups+o.unexpected > 0 {
		s.t.Errorf("%s: lost %d, duplicated %d, unexpected %d triggers; e.g. %v (logs under %s)",
			s.name, o.lost, o.duplicated, o.unexpected, o.examples, s.dir)
	}
	if o.stateMismatch > 0 {
		s.t.Errorf("%s: %d customer states differ from the model; e.g. %v", s.name, o.stateMismatch, o.stateExamples)
	}
}

// waitReady waits until the child's /readyz says it is in the group and
// cycling, or it died by itself (a failpoint).
func waitReady(t *testing.T, ch *harness.Child) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for ch.Exited() == nil {
		resp, err := http.Get("http://" + ch.Ops + "/readyz")
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

// logCount counts the lines of the child's log that start with prefix, by
// what follows the prefix (e.g. failpoint kills by phase), with "total".
func logCount(t *testing.T, ch *harness.Child, prefix string) map[string]int {
	f, err := os.Open(ch.Log.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n[rest]++
			n["total"]++
		}
	}
	return n
}

// logLines counts the lines of the child's log that contain sub.
func logLines(t *testing.T, ch *harness.Child, sub string) int {
	f, err := os.Open(ch.Log.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			n++
		}
	}
	return n
}

// phases formats counts by name, without the total, sorted.
func phases(n map[string]int) string {
	var out []string
	for k, v := range n {
		if k != "total" {
			out = append(out, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// waitNoPendingTimers polls the child's metrics until no timer is pending.
func waitNoPendingTimers(t *testing.T, ops string, ch *harness.Child) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := ch.Exited(); err != nil {
			t.Fatalf("triggerd died: %v", err)
		}
		pending, err := metricSum(ops, "triggerd_timers_pending{")
		if err == nil && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timers still pending after 2 minutes: %v %v", pending, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metricSum adds up every series of the child's /metrics whose line starts
// with prefix (a metric name and "{", or a name and " ").
func metricSum(ops, prefix string) (float64, error) {
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
		if strings.HasPrefix(line, prefix) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				return -1, err
			}
			total += v
			found = true
		}
	}
	if !found {
		return -1, fmt.Errorf("no %s series yet", prefix)
	}
	return total, nil
}
