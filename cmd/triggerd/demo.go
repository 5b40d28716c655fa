package main

import (
	"bytes"
	"context"
	_ "embed" // the demo rules
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
)

// demoCmd runs the whole system in-process: an embedded Kafka (kfake), an
// embedded schema registry, a traffic generator, the processor with delays in
// seconds, and a printer of the triggers as they are committed.
const demoUsage = `Usage:
  triggerd demo [flags]

Runs the whole system in one process: an embedded Kafka (kfake), an embedded
schema registry, a traffic generator, the processor with the example rules
scaled to seconds, and a printer of the triggers as they are committed. Every
5 s a summary line counts events, triggers by kind, pending timers, dead
letters and the contact policy's suppressions; at the end the totals by kind.
Every trigger kind shows within a minute, whatever second the demo starts
at: the calendar rules are due 8 s after the start. --quiet prints only the
summaries and the totals.
`

func demoCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	rate := fs.Int("rate", 2000, "events per second the generator produces")
	customers := fs.Int("customers", 20000, "distinct customers")
	partitions := fs.Int("partitions", 4, "partitions of every topic")
	stage1 := fs.Duration("stage1", 10*time.Second, "cart abandonment: delay of stage 1")
	stage2 := fs.Duration("stage2", 20*time.Second, "cart abandonment: delay of stage 2 after stage 1")
	quiet := fs.Bool("quiet", false, "print only the summaries and the totals, not every trigger")
	if err := parseFlags(fs, demoUsage, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, demoUsage, "demo: no arguments expected, got %q", fs.Args())
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	return runDemo(ctx, stdout, demoSettings{
		rate: *rate, customers: *customers, partitions: int32(*partitions),
		stage1: *stage1, stage2: *stage2, quiet: *quiet, clock: time.Now,
	})
}

type demoSettings struct {
	rate, customers int
	partitions      int32
	stage1, stage2  time.Duration
	quiet           bool
	// clock is the wall clock the demo starts from and its generator
	// stamps events with (shifted, see demoClock); tests move it to start
	// the demo at a second of their choosing.
	clock func() time.Time
}

// calendarLead is how long after the demo's start its calendar rules are
// due: long enough for the generator to send profiles with dates of today,
// short enough that a one-minute demo shows their triggers.
const calendarLead = 8 * time.Second

// demoClock plans the demo's event time for a demo started at wall time
// start. Calendar rules are due at a whole minute (the rules language has
// no seconds), so a demo that always waited for the next minute showed no
// birthday when started after second ~45. Instead the generator stamps its
// events shift off the wall clock (at most 30 s either way; 90 s at
// Berlin's midnight), so that the event clock starts calendarLead before
// the whole minute at, whatever second the demo starts at. Event time is
// the only clock the rules read; the processor takes a record stamped 90 s
// off the wall clock like any other (max_event_age and max_event_ahead are
// hours).
func demoClock(start time.Time) (at time.Time, shift time.Duration) {
	at = start.Add(calendarLead).Round(time.Minute)
	if berlin, err := time.LoadLocation("Europe/Berlin"); err == nil {
		if l := at.In(berlin); l.Hour() == 0 && l.Minute() == 0 {
			// Midnight: an occurrence at 00:00 is past for every
			// profile sent before it (they carry the day before).
			// At 00:01 the event clock starts after midnight and
			// every profile carries the new day.
			at = at.Add(time.Minute)
		}
	}
	return at, at.Sub(start) - calendarLead
}

func runDemo(ctx context.Context, w io.Writer, s demoSettings) error {
	// The printer and the summaries write from two goroutines: one line
	// at a time, never interleaved.
	out := &lineWriter{w: w}
	log, err := newLogger("warn")
	if err != nil {
		return err
	}
	cfg := defaultConfig()
	k := &cfg.Kafka
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(s.partitions, k.Topics.Clickstream, k.Topics.Transactions, k.Topics.Profiles))
	if err != nil {
		return fmt.Errorf("demo: embedded kafka: %w", err)
	}
	defer cluster.Close()
	registry := srfake.New()
	defer registry.Close()

	dir, err := os.MkdirTemp("", "triggerd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	k.Brokers = cluster.ListenAddrs()
	k.InstanceID = "demo"
	k.Group = "triggerd-demo"
	k.Registry.URL = registry.URL()
	k.Encodings = processor.Encodings{
		Clickstream: schemas.FormatAvro, Transactions: schemas.FormatAvro,
		Profiles: schemas.FormatJSON, Triggers: schemas.FormatAvro,
	}
	k.StartFrom = "earliest"
	k.Lateness = 500 * time.Millisecond
	cfg.State.Dir = dir
	cfg.Ops.Addr = ""
	if s.clock == nil {
		s.clock = time.Now
	}
	at, shift := demoClock(s.clock())
	wall := s.clock
	s.clock = func() time.Time { return wall().Add(shift) } // the event clock
	rulesPath, clock, err := writeDemoRules(dir, s.stage1, s.stage2, at)
	if err != nil {
		return err
	}
	cfg.Rules.File = rulesPath
	if err := cfg.validate(); err != nil {
		return err
	}
	reg, err := sr.NewClient(sr.URLs(registry.URL()))
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "triggerd demo: embedded Kafka at %s, %d partitions, %d customers, %d events/s; "+
		"the example rules with delays in seconds (cart abandonment after %s and %s more; calendar rules at %s Europe/Berlin, "+
		"%s from now: events are stamped %s off the wall clock)\n",
		strings.Join(k.Brokers, ","), s.partitions, s.customers, s.rate, s.stage1, s.stage2, clock, calendarLead, shift.Round(100*time.Millisecond))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	procDone := make(chan struct{})

	// The processor runs with the real wiring of "triggerd run".
	var proc *processor.Processor
	procReady := make(chan *processor.Processor, 1)
	wg.Go(func() {
		defer close(procDone)
		err := runWired(ctx, cfg, log, reg, wiringHooks{Production: func(p *processor.Processor) { procReady <- p }})
		if err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("processor: %w", err)
			cancel()
		}
	})
	select {
	case proc = <-procReady:
	case err := <-errc:
		return err
	}
	wg.Go(func() {
		if err := generate(ctx, cfg.Kafka, reg, s); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("generator: %w", err)
			cancel()
		}
	})
	wg.Go(func() {
		if err := printTriggers(ctx, out, cfg.Kafka, reg, s.quiet); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("printer: %w", err)
			cancel()
		}
	})

	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var lastEvents int64
	wallStart := time.Now()
	lastAt := wallStart
	summary := func() {
		st := proc.Stats()
		now := time.Now()
		rate := float64(st.Events-lastEvents) / now.Sub(lastAt).Seconds()
		lastEvents, lastAt = st.Events, now
		kinds := make([]string, 0, len(st.TriggersByKind))
		for kind, n := range st.TriggersByKind {
			kinds = append(kinds, fmt.Sprintf("%s=%d", kind, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(out, "-- %5.0fs  events=%d (%.0f/s)  triggers=%d [%s]  pending_timers=%d  dead_letters=%d  suppressed=[%s]\n",
			now.Sub(wallStart).Seconds(), st.Events, rate, st.Triggers, strings.Join(kinds, " "), st.PendingTimers, st.DeadLetters,
			suppressionSummary(proc.Suppressions()))
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			summary()
		}
	}
	cancel()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	st := proc.Stats()
	elapsed := time.Since(wallStart).Seconds()
	fmt.Fprintf(out, "demo finished: %d events in %.0fs (%.0f events/s), %d triggers, suppressed by the contact policy [%s]\n",
		st.Events, elapsed, float64(st.Events)/elapsed, st.Triggers, suppressionSummary(proc.Suppressions()))
	kinds, err := demoKinds(rulesPath)
	if err != nil {
		return err
	}
	fmt.Fprint(out, kindTotals(kinds, st.TriggersByKind))
	return nil
}

// demoKinds lists the trigger kinds of the rules file, in file order.
func demoKinds(path string) ([]string, error) {
	set, err := rules.Load(path)
	if err != nil {
		return nil, err
	}
	var kinds []string
	for _, r := range set.Rules() {
		if !slices.Contains(kinds, r.Kind) {
			kinds = append(kinds, r.Kind)
		}
	}
	return kinds, nil
}

// kindTotals renders the triggers written per kind, one kind a line: every
// kind of the rules, those that did not fire with 0 so that their absence
// shows, then any other kind counted.
func kindTotals(kinds []string, counts map[string]int64) string {
	var b strings.Builder
	b.WriteString("triggers by kind:\n")
	for _, kind := range kinds {
		fmt.Fprintf(&b, "  %-22s %d\n", kind, counts[kind])
	}
	var others []string
	for kind := range counts {
		if !slices.Contains(kinds, kind) {
			others = append(others, kind)
		}
	}
	sort.Strings(others)
	for _, kind := range others {
		fmt.Fprintf(&b, "  %-22s %d\n", kind, counts[kind])
	}
	return b.String()
}

// suppressionSummary renders the contact policy's counts by reason
// ("deferred" for quiet hours deferrals), sorted.
func suppressionSummary(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for reason, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", reason, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// generate produces workload traffic at s.rate events per second, with
// event times from the wall clock.
func generate(ctx context.Context, k processor.Config, reg *sr.Client, s demoSettings) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	type target struct {
		topic string
		enc   *schemas.EventEncoder
	}
	targets := map[schemas.Source]target{}
	for _, t := range []struct {
		src   schemas.Source
		topic string
		f     schemas.Format
	}{
		{schemas.SourceClickstream, k.Topics.Clickstream, k.Encodings.Clickstream},
		{schemas.SourceTransaction, k.Topics.Transactions, k.Encodings.Transactions},
		{schemas.SourceProfile, k.Topics.Profiles, k.Encodings.Profiles},
	} {
		enc, err := schemas.NewEventEncoder(ctx, t.src, t.f, reg, t.topic+"-value")
		if err != nil {
			return err
		}
		targets[t.src] = target{t.topic, enc}
	}
	wc := workload.DefaultConfig()
	wc.AllKinds = true
	wc.CouponTTL = 30 * time.Second
	wc.Customers = s.customers
	wc.Seed = uint64(s.clock().UnixNano())
	gen := workload.New(wc)
	var ev schemas.Event
	const slice = 20 * time.Millisecond
	perSlice := max(1, s.rate*int(slice)/int(time.Second))
	tick := time.NewTicker(slice)
	defer tick.Stop()
	var produceErr error
	var mu sync.Mutex
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		for range perSlice {
			gen.Next(s.clock(), &ev)
			t := targets[ev.Source]
			val, err := t.enc.Encode(nil, &ev)
			if err != nil {
				return err
			}
			cl.Produce(ctx, &kgo.Record{Topic: t.topic, Key: []byte(ev.Customer), Value: val, Timestamp: ev.Time},
				func(_ *kgo.Record, err error) {
					if err != nil && !errors.Is(err, context.Canceled) {
						mu.Lock()
						produceErr = err
						mu.Unlock()
					}
				})
		}
		mu.Lock()
		err := produceErr
		mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// printTriggers reads committed triggers and prints each on one line.
func printTriggers(ctx context.Context, out io.Writer, k processor.Config, reg *sr.Client, quiet bool) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics(k.Topics.Triggers),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	dec, err := schemas.NewTriggerDecoder(k.Encodings.Triggers, reg)
	if err != nil {
		return err
	}
	var tr schemas.Trigger
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, r := range fetches.Records() {
			if quiet {
				continue
			}
			if err := dec.DecodeContext(ctx, r.Value, &tr); err != nil {
				fmt.Fprintf(out, "undecodable trigger at offset %d: %v\n", r.Offset, err)
				continue
			}
			fmt.Fprintln(out, formatTrigger(&tr))
		}
	}
}

//go:embed demo_rules.yaml
var demoRulesTemplate string

// writeDemoRules writes the demo's rules file into dir: the example rules
// with delays in seconds, the cart delays given, and calendar rules at the
// whole minute at (Europe/Berlin; see demoClock). It returns the file and
// that time of day.
func writeDemoRules(dir string, stage1, stage2 time.Duration, at time.Time) (string, string, error) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return "", "", err
	}
	at = at.In(loc)
	clock := at.Format("15:04")
	// Quiet hours scaled like the delays: a one-minute night that starts
	// a minute after the calendar rules fire, so a demo of a few minutes
	// shows marketing deferred to its end (customers in Europe/Berlin).
	quietFrom, quietTo := at.Add(time.Minute).Format("15:04"), at.Add(2*time.Minute).Format("15:04")
	tmpl, err := template.New("rules").Parse(demoRulesTemplate)
	if err != nil {
		return "", "", err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]string{"Clock": clock, "Stage1": stage1.String(), "Stage2": stage2.String(),
		"QuietFrom": quietFrom, "QuietTo": quietTo}); err != nil {
		return "", "", err
	}
	path := filepath.Join(dir, "demo-rules.yaml")
	return path, clock, os.WriteFile(path, b.Bytes(), 0o600)
}

// formatTrigger renders a trigger on one readable line.
func formatTrigger(t *schemas.Trigger) string {
	line := fmt.Sprintf("%s  %-20s stage=%d %-5s customer=%s", t.FiredAt.Local().Format("15:04:05"), t.Kind, t.Stage, t.Channel, t.Customer)
	if len(t.Items) > 0 || t.Value != (schemas.Money{}) {
		line += fmt.Sprintf(" items=%d value=%s", len(t.Items), t.Value)
	}
	return line + " id=" + t.ID[:12]
}

// lineWriter serializes writes from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
