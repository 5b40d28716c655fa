package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// cartPolicyYAML is a one-stage cart rule under an email cap: the shadow's
// candidate changes the delay and the cap.
func cartPolicyYAML(delay time.Duration, capMax int) []byte {
	return fmt.Appendf(nil, `defaults: {time_zone: UTC, channel: email}
rules:
  - id: cart_abandoned
    version: 1
    family: behavioral
    sequence:
      start: {on: [add_to_cart], when: "customer.cart.last_event == event.id && customer.cart.size > 0", restart: true}
      exit: {on: [purchase]}
      stages: [{delay: %s, channel: email}]
policy:
  consent: opt_out
  caps:
    - {name: email_7d, channel: email, max: %d, window: 7d}
`, delay, capMax)
}

// writeRules writes src to name in dir and compiles it.
func writeRules(t *testing.T, dir, name string, src []byte) (string, *rules.Set) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, rs
}

// renamed is cfg with its own group and outputs, all suffixed: a reference
// processor next to the ones under test.
func renamed(cfg processor.Config, suffix string) processor.Config {
	r := cfg
	r.Group += suffix
	r.Topics.Triggers += suffix
	r.Topics.Suppressions = cfg.SuppressionsTopic() + suffix
	r.Topics.DeadLetter += suffix
	r.Topics.Changelog += suffix
	return r
}

// TestShadowMode runs "triggerd run" with a candidate in shadow mode
// (a shorter delay and a tighter cap) on a workload, next to two
// standalone reference processors, one with each rules file. The shadow's
// triggers and suppressions go to the shadow topics and equal, ID for ID,
// the candidate's reference; production's equal the production reference,
// so the shadow changed nothing there and wrote none of its own. The
// shadow's metrics are apart from production's.
func TestShadowMode(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 2
	kcfg := c.Topics(t, parts)
	dir := t.TempDir()
	prodFile, prodRules := writeRules(t, dir, "current.yaml", cartPolicyYAML(time.Hour, 3))
	candFile, candRules := writeRules(t, dir, "candidate.yaml", cartPolicyYAML(30*time.Minute, 2))

	refProd := harness.RunProcessor(t, renamed(kcfg, ".ref-prod"), prodRules, nil)
	refCand := harness.RunProcessor(t, renamed(kcfg, ".ref-cand"), candRules, nil)

	cfg := defaultConfig()
	cfg.Kafka = kcfg
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.Ops.Addr = ""
	cfg.Rules = RulesConfig{File: prodFile}
	cfg.Shadow.Rules = candFile
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	procs := make(chan *processor.Processor, 2)
	var gather prometheus.Gatherer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runWired(runCtx, cfg, zaptest.NewLogger(t), nil, wiringHooks{
			Production: func(p *processor.Processor) { procs <- p },
			Shadow:     func(p *processor.Processor) { procs <- p },
			Metrics:    func(g prometheus.Gatherer) { gather = g },
		})
	}()
	var prod, shadow *processor.Processor
	for prod == nil || shadow == nil {
		select {
		case p := <-procs:
			if prod == nil {
				prod = p
			} else {
				shadow = p
			}
		case err := <-done:
			t.Fatalf("run stopped at start: %v", err)
		case <-ctx.Done():
			t.Fatal("run did not start")
		}
	}

	p := harness.NewProducer(t, c, kcfg, nil)
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(-10 * 24 * time.Hour)
	wcfg := workload.DefaultConfig()
	wcfg.Customers = 200
	gen := workload.New(wcfg)
	const n = 4000
	span := 3 * 24 * time.Hour
	var evs []schemas.Event
	for i := 0; i < n; i++ {
		var ev schemas.Event
		gen.Next(start.Add(time.Duration(i)*span/n), &ev)
		evs = append(evs, ev)
	}
	for i := 0; i < len(evs); i += 500 {
		p.Send(parts, evs[i:min(i+500, len(evs))]...)
	}
	p.Tick(parts, start.Add(span+2*24*time.Hour))
	for _, proc := range []*processor.Processor{prod, shadow, refProd, refCand} {
		harness.WaitEvents(t, proc, int64(n+3*parts))
	}

	topics := func(cfg processor.Config) (trig, sup []string) {
		return readTriggerIDs(t, ctx, c, cfg.Topics.Triggers), readSuppressionKeys(t, ctx, c, cfg.SuppressionsTopic())
	}
	prodTrig, prodSup := topics(kcfg)
	shadowTrig, shadowSup := topics(shadowKafka(kcfg))
	refProdTrig, refProdSup := topics(renamed(kcfg, ".ref-prod"))
	refCandTrig, refCandSup := topics(renamed(kcfg, ".ref-cand"))
	if len(refCandTrig) < 20 || len(refCandSup) == 0 {
		t.Fatalf("the workload gave the candidate only %d triggers and %d suppressions; the test needs more", len(refCandTrig), len(refCandSup))
	}
	sameList(t, "production triggers vs the production reference", prodTrig, refProdTrig)
	sameList(t, "production suppressions vs the production reference", prodSup, refProdSup)
	sameList(t, "shadow triggers vs the candidate reference", shadowTrig, refCandTrig)
	sameList(t, "shadow suppressions vs the candidate reference", shadowSup, refCandSup)
	prodIDs := map[string]bool{}
	for _, tr := range prodTrig {
		prodIDs[strings.Fields(tr)[0]] = true
	}
	onlyCand := 0
	for _, tr := range shadowTrig {
		if !prodIDs[strings.Fields(tr)[0]] {
			onlyCand++
		}
	}
	if onlyCand == 0 || slices.Equal(prodTrig, shadowTrig) {
		t.Fatalf("the candidate emitted no trigger ID production did not: the test cannot tell the topics apart")
	}
	t.Logf("production %d triggers, %d suppressions; shadow %d triggers (%d not in production), %d suppressions",
		len(prodTrig), len(prodSup), len(shadowTrig), onlyCand, len(shadowSup))

	fams, err := gather.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			sums[f.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if got := sums["triggerd_output_triggers_total"]; got != float64(len(prodTrig)) {
		t.Errorf("triggerd_output_triggers_total = %v, want production's %d", got, len(prodTrig))
	}
	if got := sums["shadow_triggerd_output_triggers_total"]; got != float64(len(shadowTrig)) {
		t.Errorf("shadow_triggerd_output_triggers_total = %v, want the shadow's %d", got, len(shadowTrig))
	}
	if got := sums["triggerd_shadow_up"]; got != 1 {
		t.Errorf("triggerd_shadow_up = %v while the shadow runs, want 1", got)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestShadowFailureLeavesProduction: a shadow that cannot start (its
// changelog exists with another partition count) is logged and shown in
// triggerd_shadow_up; production runs on, ready, and emits its triggers.
func TestShadowFailureLeavesProduction(t *testing.T) {
	c := harness.NewCluster(t)
	const parts = 2
	kcfg := c.Topics(t, parts)
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bad := shadowKafka(kcfg).Topics.Changelog
	compact := "compact"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, bad); err != nil {
		t.Fatal(err)
	}
	harness.WaitTopics(t, ctx, adm, 1, bad)
	dir := t.TempDir()
	prodFile, _ := writeRules(t, dir, "current.yaml", cartPolicyYAML(time.Hour, 3))
	candFile, _ := writeRules(t, dir, "candidate.yaml", cartPolicyYAML(30*time.Minute, 2))
	cfg := defaultConfig()
	cfg.Kafka = kcfg
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.Ops.Addr = ""
	cfg.Rules = RulesConfig{File: prodFile}
	cfg.Shadow.Rules = candFile
	core, logs := observer.New(zap.ErrorLevel)
	procs := make(chan *processor.Processor, 1)
	var gather prometheus.Gatherer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runWired(runCtx, cfg, zap.New(core), nil, wiringHooks{
			Production: func(p *processor.Processor) { procs <- p },
			Metrics:    func(g prometheus.Gatherer) { gather = g },
		})
	}()
	var prod *processor.Processor
	select {
	case prod = <-procs:
	case err := <-done:
		t.Fatalf("run stopped at start: %v", err)
	}
	p := harness.NewProducer(t, c, kcfg, nil)
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-3 * 24 * time.Hour)
	const carts = 5
	for i := 0; i < carts; i++ {
		p.Send(parts, schemas.Event{Source: schemas.SourceClickstream, ID: fmt.Sprintf("a%d", i), Customer: schemas.CustomerID(fmt.Sprintf("c%d", i)),
			Type: schemas.AddToCart, Time: day.Add(time.Duration(i) * time.Hour), ProductID: "p1", Quantity: 1,
			Price: schemas.Money{Minor: 500, Currency: "EUR"}})
	}
	p.Tick(parts, day.Add(24*time.Hour))
	harness.WaitEvents(t, prod, int64(carts+3*parts))
	up := func() float64 {
		fams, err := gather.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "triggerd_shadow_up" {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no triggerd_shadow_up")
		return 0
	}
	for deadline := time.Now().Add(30 * time.Second); up() != 0 || logs.FilterMessageSnippet("shadow pipeline stopped").Len() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the shadow's failure is not reported: triggerd_shadow_up %v, log %v", up(), logs.All())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ready, why := prod.Readiness(); !ready {
		t.Errorf("production not ready after the shadow failed: %s", why)
	}
	if got := readTriggerIDs(t, ctx, c, kcfg.Topics.Triggers); len(got) != carts {
		t.Errorf("production emitted %d triggers, want %d", len(got), carts)
	}
	select {
	case err := <-done:
		t.Fatalf("run stopped with the shadow: %v", err)
	default:
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// The shadow's topics, group and state are its own; a state_dir equal to
// state.dir is refused.
func TestShadowConfig(t *testing.T) {
	k := processor.DefaultConfig()
	k.Topics.Suppressions = ""
	s := shadowKafka(k)
	if s.Group != "triggerd-shadow" || s.Topics.Triggers != "triggers.shadow" || s.SuppressionsTopic() != "triggers.suppressions.shadow" ||
		s.Topics.DeadLetter != "triggerd.dead-letter.shadow" || s.Topics.Changelog != "triggerd.changelog.shadow" {
		t.Errorf("shadow config: %+v", s.Topics)
	}
	if !slices.Equal(s.Inputs(), k.Inputs()) {
		t.Errorf("shadow inputs %v, want production's %v", s.Inputs(), k.Inputs())
	}
	dir := t.TempDir()
	cand, _ := writeRules(t, dir, "c.yaml", cartPolicyYAML(time.Hour, 1))
	cfg := defaultConfig()
	cfg.State.Dir = dir
	cfg.Shadow = ShadowConfig{Rules: cand, StateDir: dir + "/"}
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "shadow.state_dir") {
		t.Errorf("state_dir = state.dir: %v, want it refused", err)
	}
	cfg.Shadow = ShadowConfig{Rules: filepath.Join(dir, "missing.yaml")}
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "shadow.rules") {
		t.Errorf("a missing shadow rules file: %v, want it refused as shadow.rules", err)
	}
	if got := (ShadowConfig{}).stateDir("/var/lib/triggerd"); got != "/var/lib/triggerd/shadow" {
		t.Errorf("default shadow state dir %q", got)
	}
}

// readTriggerIDs reads every committed trigger of topic up to its end
// offsets now, as "ID due channel", sorted.
func readTriggerIDs(t *testing.T, ctx context.Context, c *harness.Cluster, topic string) []string {
	t.Helper()
	dec, err := schemas.NewTriggerDecoder(schemas.FormatJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	readAll(t, ctx, c, topic, func(v []byte) {
		var tr schemas.Trigger
		if err := dec.Decode(v, &tr); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		out = append(out, fmt.Sprintf("%s %s %s", tr.ID, tr.DueAt.UTC().Format(time.RFC3339), tr.Channel))
	})
	slices.Sort(out)
	return out
}

// readSuppressionKeys reads every committed suppression of topic as
// "trigger ID action reason", sorted.
func readSuppressionKeys(t *testing.T, ctx context.Context, c *harness.Cluster, topic string) []string {
	t.Helper()
	dec, err := schemas.NewSuppressionDecoder(schemas.FormatJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	readAll(t, ctx, c, topic, func(v []byte) {
		var x schemas.Suppression
		if err := dec.Decode(ctx, v, &x); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		out = append(out, fmt.Sprintf("%s %s %s", x.Trigger.ID, x.Action, x.Reason))
	})
	slices.Sort(out)
	return out
}

// readAll calls fn with every committed value of topic up to its end
// offsets as listed first (a topic that does not exist has none).
func readAll(t *testing.T, ctx context.Context, c *harness.Cluster, topic string, fn func([]byte)) {
	t.Helper()
	ends, err := kadm.NewClient(c.Client(t)).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	if len(left) == 0 {
		return
	}
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v (left %v)", topic, err, left)
		}
		fetches.EachError(func(_ string, _ int32, err error) { t.Fatalf("reading %s: %v", topic, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() {
				fn(r.Value)
			}
		})
	}
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	t.Errorf("%s: %d, want %d; missing %v; extra %v", what, len(got), len(want), missing, extra)
}
