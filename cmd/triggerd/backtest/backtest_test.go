package backtest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// cartRules is a one-stage cart rule under a contact policy with an email
// cap: the delay and the cap are what a candidate changes.
func cartRules(t testing.TB, name string, delay time.Duration, capMax int) *rules.Set {
	t.Helper()
	src := fmt.Sprintf(`defaults: {time_zone: UTC, channel: email}
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
	rs, err := rules.Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestBacktestEqualsLive runs the processor live on a workload, then
// backtests the same rules over a range of it: the backtest's triggers and
// suppressions are, ID for ID, those the live processor emitted for that
// range. The production topics are unchanged by the backtest. With avro
// inputs the scratch decodes the copies with the production writer
// schemas, and registers nothing in the production registry.
func TestBacktestEqualsLive(t *testing.T) {
	t.Run("json", func(t *testing.T) { testBacktestEqualsLive(t, schemas.FormatJSON) })
	t.Run("avro", func(t *testing.T) { testBacktestEqualsLive(t, schemas.FormatAvro) })
}

func testBacktestEqualsLive(t *testing.T, inputs schemas.Format) {
	c := harness.NewCluster(t)
	const parts = 2
	cfg := c.Topics(t, parts)
	var reg *sr.Client
	subjects := func() []string { return nil }
	if inputs == schemas.FormatAvro {
		fake := srfake.New()
		t.Cleanup(fake.Close)
		// Other schemas first, so that the inputs' schema IDs are not
		// those a fresh registry would give them: the scratch must
		// decode by the production IDs.
		for _, typ := range []string{"string", "int", "long", "double", "boolean"} {
			if _, _, err := fake.RegisterSchema("other-"+typ, sr.Schema{Schema: `"` + typ + `"`}); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if reg, err = sr.NewClient(sr.URLs(fake.URL())); err != nil {
			t.Fatal(err)
		}
		cfg.Registry.URL = fake.URL()
		cfg.Encodings.Clickstream, cfg.Encodings.Transactions, cfg.Encodings.Profiles = inputs, inputs, inputs
		subjects = func() []string {
			got, err := reg.Subjects(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			return got
		}
	}
	rs := cartRules(t, "live.yaml", time.Hour, 3)
	proc := harness.RunProcessor(t, cfg, rs, reg)
	p := harness.NewProducer(t, c, cfg, reg)

	start := time.Now().UTC().Truncate(24 * time.Hour).Add(-10 * 24 * time.Hour)
	wcfg := workload.DefaultConfig()
	wcfg.Customers = 300
	gen := workload.New(wcfg)
	const n = 6000
	span := 4 * 24 * time.Hour
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
	harness.WaitEvents(t, proc, int64(n+3*parts))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	liveTrig, liveSup, err := readOutputs(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(c.Client(t))
	before := clusterSnapshot(t, ctx, adm, cfg)
	subjectsBefore := subjects()
	if inputs == schemas.FormatAvro && len(subjectsBefore) < 3 {
		t.Fatalf("the avro inputs registered only %v", subjectsBefore)
	}

	from, to := start.Add(24*time.Hour), start.Add(3*24*time.Hour)
	rep, err := Run(ctx, Options{Source: cfg, Baseline: rs, Candidate: rs, From: from, To: to, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, tr := range liveTrig {
		if inRange(tr.DueAt, from, to) {
			want = append(want, tr.ID)
		}
	}
	if len(want) < 20 {
		t.Fatalf("the workload gave only %d live triggers in the range; the test needs more", len(want))
	}
	var wantSup []string
	for _, x := range liveSup {
		if inRange(x.DecidedAt, from, to) {
			wantSup = append(wantSup, x.Trigger.ID+"/"+string(x.Action)+"/"+x.Reason)
		}
	}
	for _, side := range []Side{rep.Baseline, rep.Candidate} {
		var got, gotSup []string
		for _, tr := range side.TriggerList {
			got = append(got, tr.ID)
		}
		for _, x := range side.SuppressionList {
			gotSup = append(gotSup, x.Trigger.ID+"/"+string(x.Action)+"/"+x.Reason)
		}
		sameSet(t, "triggers", got, want)
		sameSet(t, "suppressions", gotSup, wantSup)
	}
	t.Logf("live and backtest agree: %d triggers, %d suppressions in [%s, %s); replay %d events in %.2fs",
		len(want), len(wantSup), from.Format(time.DateOnly), to.Format(time.DateOnly), rep.Replay.Total.Events, rep.Replay.Total.WallSeconds)
	if d := rep.Differences; d.Customers != 0 || d.Moved+d.OnlyBaseline+d.OnlyCandidate != 0 {
		t.Errorf("the same rules on both sides differ: %+v", d)
	}
	if after := subjects(); !slices.Equal(after, subjectsBefore) {
		t.Errorf("the backtest changed the production registry: subjects %v, before %v", after, subjectsBefore)
	}
	if after := clusterSnapshot(t, ctx, adm, cfg); after != before {
		t.Errorf("the backtest changed the production cluster:\nbefore %s\nafter  %s", before, after)
	}
}

// clusterSnapshot lists the end offsets of every topic of cfg and the
// consumer groups: what a backtest must leave as it was.
func clusterSnapshot(t *testing.T, ctx context.Context, adm *kadm.Client, cfg processor.Config) string {
	t.Helper()
	topics := append(cfg.Inputs(), cfg.Topics.Triggers, cfg.SuppressionsTopic(), cfg.Topics.Changelog, cfg.Topics.DeadLetter)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	ends.Each(func(o kadm.ListedOffset) {
		lines = append(lines, fmt.Sprintf("%s[%d]=%d", o.Topic, o.Partition, o.Offset))
	})
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, groups.Groups()...)
	sort.Strings(lines)
	return fmt.Sprint(lines)
}

func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return
	}
	var missing, extra []string
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			extra = append(extra, g)
		}
	}
	t.Errorf("%s: backtest has %d, live %d; missing %v; extra %v", what, len(got), len(want), missing, extra)
}
