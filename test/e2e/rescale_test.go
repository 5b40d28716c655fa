package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/processor/rescale"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// rescalePhase is the traffic between two rescales, and the tick that
// ends it (every input partition advanced to it, so timers due before it
// fire).
type rescalePhase struct {
	events []schemas.Event
	tick   time.Time
	// tail are clickstream events after the tick, sent after it when the
	// run holds records: with idle_advance off they wait for the other
	// inputs, held in the state across the rescale, until the next
	// phase's tick.
	tail []schemas.Event
}

// rescaleWorkload makes three phases of carts, purchases and cart changes
// over 300 customers, stamped in the future (idle advance then never moves
// event time: only the ticks do, so both runs fire the same timers at the
// same event times). Stage 1 (1 h) of some carts is due in the next phase:
// those timers move with a rescale before they fire.
func rescaleWorkload(seed uint64) []rescalePhase {
	rng := rand.New(rand.NewPCG(seed, 1))
	base := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Millisecond)
	var phases []rescalePhase
	n := 0
	for phase := range 3 {
		start := base.Add(time.Duration(phase) * 75 * time.Minute)
		var evs []schemas.Event
		for i := range 150 {
			c := fmt.Sprintf("cust-%d", rng.IntN(300))
			at := start.Add(time.Duration(i) * 12 * time.Second)
			n++
			switch rng.IntN(5) {
			case 0:
				evs = append(evs, purchase(fmt.Sprintf("e%d", n), c, at))
			default:
				evs = append(evs, click(fmt.Sprintf("e%d", n), c, schemas.AddToCart, at, fmt.Sprintf("p%d", rng.IntN(9))))
			}
		}
		ph := rescalePhase{events: evs, tick: start.Add(70 * time.Minute)}
		if phase < 2 {
			for i := range 24 {
				n++
				ph.tail = append(ph.tail, click(fmt.Sprintf("e%d", n), fmt.Sprintf("cust-%d", rng.IntN(300)),
					schemas.AddToCart, ph.tick.Add(time.Minute+time.Duration(i)*7*time.Second), fmt.Sprintf("p%d", rng.IntN(9))))
			}
		}
		phases = append(phases, ph)
	}
	return phases
}

func rescaleConfig(cfg processor.Config) processor.Config {
	cfg.IdleAdvance = true
	cfg.ReconnectGrace = 200 * time.Millisecond
	cfg.IdleGrace = 300 * time.Millisecond
	return cfg
}

// runPhase produces a phase to the topics of cfg (parts partitions) and
// runs a processor on a fresh store until it has read every record up
// to the tick (carried more: the held records a rescale wrote to the new
// input topics, read again) and, with held, until the phase's tail is held in the changelog;
// the processor stays until the test ends unless stop is called.
func runPhase(t *testing.T, c *harness.Cluster, cfg processor.Config, parts int32, ph rescalePhase, carried int, held bool) (*running, *state.Store) {
	t.Helper()
	p := harness.NewProducer(t, c, cfg, nil)
	p.Send(parts, ph.events...)
	p.Tick(parts, ph.tick)
	if held {
		p.Send(parts, ph.tail...)
	}
	store := memStore(t)
	r := start(t, cfg, store)
	harness.WaitEvents(t, r.proc, int64(carried+len(ph.events))+3*int64(parts))
	if held {
		waitHeld(t, c, cfg.Topics.Changelog, len(ph.tail))
	}
	return r, store
}

// waitHeld waits until the changelog holds at least n held input records
// (live held keys, read_committed): the tail, and the last records of
// other inputs that wait for a later record of another.
func waitHeld(t *testing.T, c *harness.Cluster, changelog string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := heldInChangelog(t, c, changelog)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("changelog %s holds %d held records, want %d", changelog, got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heldWhenStopped counts the live held keys of the changelog of a stopped
// deployment, once every transaction's markers are written: the last
// cycle's EndTxn returns before them, and until they are written a
// read_committed count stops short of that cycle (the rescale, run after,
// would see it).
func heldWhenStopped(t *testing.T, c *harness.Cluster, changelog string) int {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		lso, err := adm.ListCommittedOffsets(ctx, changelog)
		if err == nil {
			err = lso.Error()
		}
		hw, herr := adm.ListEndOffsets(ctx, changelog)
		if err == nil {
			err = errors.Join(herr, hw.Error())
		}
		if err != nil {
			t.Fatalf("offsets of %s: %v", changelog, err)
		}
		open := 0
		lso.Each(func(l kadm.ListedOffset) {
			if h, ok := hw.Lookup(l.Topic, l.Partition); !ok || h.Offset != l.Offset {
				open++
			}
		})
		if open == 0 {
			return heldInChangelog(t, c, changelog)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d partitions with a transaction open 30s after the processor stopped", changelog, open)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// heldInChangelog counts the live held keys of the changelog.
func heldInChangelog(t *testing.T, c *harness.Cluster, changelog string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(c.Client(t)).ListCommittedOffsets(ctx, changelog)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	if len(left) == 0 {
		return 0
	}
	cl := c.Client(t, kgo.ConsumeTopics(changelog), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	defer cl.Close()
	live := map[string]bool{}
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", changelog, ctx.Err())
		}
		for _, rec := range fs.Records() {
			if rec.Offset >= left[rec.Partition]-1 {
				delete(left, rec.Partition)
			}
			if rec.Attrs.IsControl() || rec.Offset >= left[rec.Partition] && left[rec.Partition] > 0 {
				continue
			}
			if k, err := state.ParseChangelogKey(rec.Key); err == nil && k.Kind == state.RecordHeld {
				id := fmt.Sprint(rec.Partition, "/", string(rec.Key))
				live[id] = len(rec.Value) > 0
			}
		}
	}
	n := 0
	for _, l := range live {
		if l {
			n++
		}
	}
	return n
}

// rescaleUntilDone runs the rescale, interrupting it (context cancelled
// after a random number of progress commits) until a run completes.
func rescaleUntilDone(t *testing.T, cfg processor.Config, to int32, rng *rand.Rand) rescale.Result {
	t.Helper()
	interrupted := 0
	for attempt := 0; ; attempt++ {
		if attempt > 60 {
			t.Fatalf("rescale to %d not done after 60 attempts", to)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		commits, stopAt := 0, rng.IntN(8)
		if interrupted >= 4 {
			stopAt = -1 // let it finish
		}
		res, err := rescale.Run(ctx, cfg, rescale.Options{To: to, ChunkRecords: 11, OffsetsEvery: 7, OnCommit: func() {
			if commits++; commits == stopAt {
				cancel()
			}
		}})
		cancel()
		if err == nil {
			t.Logf("%s (interrupted %d times, %d records written by the last run)", res.Summary(), interrupted, res.Written)
			return res
		}
		var refused *rescale.RefusedError
		if errors.As(err, &refused) && strings.Contains(refused.Reason, "member") && attempt < 40 {
			// A stopped static member stays in the group until its
			// session times out.
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("rescale to %d: %v", to, err)
		}
		interrupted++
	}
}

// withLayout returns cfg with the settings the rescale printed.
func withLayout(t *testing.T, cfg processor.Config, res rescale.Result) processor.Config {
	t.Helper()
	for _, s := range res.Settings {
		switch s.Path {
		case "kafka.topics.changelog":
			cfg.Topics.Changelog = s.Value
		case "kafka.topics.clickstream":
			cfg.Topics.Clickstream = s.Value
		case "kafka.topics.transactions":
			cfg.Topics.Transactions = s.Value
		case "kafka.topics.profiles":
			cfg.Topics.Profiles = s.Value
		default:
			t.Fatalf("unexpected setting %s: %s", s.Path, s.Value)
		}
	}
	return cfg
}

// TestRescaleState: the state after 4 → 8 → 3 partitions, each rescale
// interrupted at random points and run again, equals, customer by
// customer (record and pending timers), what a processor that ran the same
// traffic on 3 partitions from the start holds, and the triggers are the
// same: none lost, none twice.
func TestRescaleState(t *testing.T) { testRescale(t, false) }

// TestRescaleHeld is TestRescaleState with idle_advance off and records
// held at each rescale (clickstream events after the tick, waiting for the
// other inputs): the rescale writes them to the new input topics, where
// the new layout reads, holds and applies them as the reference does.
func TestRescaleHeld(t *testing.T) { testRescale(t, true) }

func testRescale(t *testing.T, held bool) {
	c := harness.NewCluster(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	phases := rescaleWorkload(seed)

	conf := func(cfg processor.Config) processor.Config {
		cfg = rescaleConfig(cfg)
		cfg.IdleAdvance = !held
		return cfg
	}
	// wantHeld: the rescale moved what the stopped deployment held.
	wantHeld := func(res rescale.Result, before int) {
		t.Helper()
		if res.Held != int64(before) || held && before == 0 {
			t.Fatalf("the rescale moved %d held records; the changelog held %d", res.Held, before)
		}
	}
	cfg := conf(c.Topics(t, 4))
	r4, _ := runPhase(t, c, cfg, 4, phases[0], 0, held)
	r4.stop(t)
	before := heldWhenStopped(t, c, cfg.Topics.Changelog)
	res8 := rescaleUntilDone(t, cfg, 8, rng)
	wantHeld(res8, before)
	if res8.From != 4 || res8.To != 8 {
		t.Fatalf("rescale 4 -> 8 says from %d to %d", res8.From, res8.To)
	}
	again, err := rescale.Run(context.Background(), cfg, rescale.Options{To: 8})
	if err != nil || !again.AlreadyDone || again.Customers != res8.Customers {
		t.Fatalf("a rerun of a finished rescale: %+v, %v: want already done with the same counts", again, err)
	}
	cfg8 := withLayout(t, cfg, res8)
	r8, _ := runPhase(t, c, cfg8, 8, phases[1], int(res8.Held), held)
	r8.stop(t)
	before = heldWhenStopped(t, c, cfg8.Topics.Changelog)
	res3 := rescaleUntilDone(t, cfg8, 3, rng)
	wantHeld(res3, before)
	cfg3 := withLayout(t, cfg8, res3)
	_, got := runPhase(t, c, cfg3, 3, phases[2], int(res3.Held), held)

	// The reference runs the same phases on 3 partitions, stopped and
	// started again on its store between them as the other run was.
	ref := conf(c.Topics(t, 3))
	pr := harness.NewProducer(t, c, ref, nil)
	want := memStore(t)
	for i, ph := range phases {
		pr.Send(3, ph.events...)
		pr.Tick(3, ph.tick)
		if held {
			pr.Send(3, ph.tail...)
		}
		refRun := start(t, ref, want)
		// Records held across a restart were counted when read.
		harness.WaitEvents(t, refRun.proc, int64(len(ph.events))+3*3)
		if held {
			waitHeld(t, c, ref.Topics.Changelog, len(ph.tail))
		}
		if i < len(phases)-1 {
			refRun.stop(t)
		}
	}

	customers := map[string]bool{}
	for _, ph := range phases {
		for _, ev := range append(ph.events, ph.tail...) {
			customers[string(ev.Customer)] = true
		}
	}
	mismatch, timers := 0, 0
	for id := range customers {
		part := harness.PartitionOf(id, 3)
		g, gok, err := got.ReadCustomer(part, schemas.CustomerID(id))
		if err != nil {
			t.Fatal(err)
		}
		w, wok, err := want.ReadCustomer(part, schemas.CustomerID(id))
		if err != nil {
			t.Fatal(err)
		}
		timers += len(w.Timers)
		// When a decision was recorded is the wall clock's, not the
		// state's.
		for _, cs := range []*state.CustomerState{&g, &w} {
			for i := range cs.Customer.Decisions {
				cs.Customer.Decisions[i].Recorded = time.Time{}
			}
		}
		if gok != wok || !reflect.DeepEqual(g, w) {
			if mismatch++; mismatch <= 3 {
				t.Errorf("customer %s after 4 -> 8 -> 3:\n got %v %+v\nwant %v %+v", id, gok, g, wok, w)
			}
		}
	}
	if mismatch > 0 || timers == 0 {
		t.Fatalf("%d of %d customers differ from the 3-partition reference; %d pending timers", mismatch, len(customers), timers)
	}

	gotTrig := committedTriggers(t, c, cfg.Topics.Triggers)
	wantTrig := committedTriggers(t, c, ref.Topics.Triggers)
	if len(wantTrig) == 0 {
		t.Fatal("the reference fired no trigger: the workload tests nothing")
	}
	var lost, dup []string
	seen := map[string]int{}
	for _, id := range gotTrig {
		seen[id]++
	}
	for _, id := range wantTrig {
		if seen[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, n := range seen {
		if n > 1 {
			dup = append(dup, id)
		}
	}
	if len(lost) > 0 || len(dup) > 0 || len(gotTrig) != len(wantTrig) {
		t.Fatalf("triggers: %d, reference %d; lost %v, duplicated %v", len(gotTrig), len(wantTrig), lost, dup)
	}
	t.Logf("customers=%d timers=%d triggers=%d: equal to the reference", len(customers), timers, len(wantTrig))
}

// committedTriggers reads every committed trigger ID of topic to its end:
// to the end offset, not the last stable one, which stays short of a
// transaction that has just ended until its markers are written; a
// read_committed fetch waits for them.
func committedTriggers(t *testing.T, c *harness.Cluster, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(c.Client(t)).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	dec, err := schemas.NewTriggerDecoder(schemas.FormatJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v (partitions left %v)", topic, ctx.Err(), left)
		}
		for _, rec := range fs.Records() {
			if rec.Offset >= left[rec.Partition]-1 {
				delete(left, rec.Partition)
			}
			if rec.Attrs.IsControl() {
				continue
			}
			var tr schemas.Trigger
			if err := dec.Decode(rec.Value, &tr); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tr.ID)
		}
	}
	sort.Strings(ids)
	return ids
}
