package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/triggerd/triggerd/schemas"
)

// The Kafka Streams peer (test/peer/kstreams): the goka peer's cart workload
// written with the Kafka Streams Processor API, built with Maven by its
// build.sh and run with java on the real broker, in each of the benchmark's
// modes (exactly_once is Kafka Streams' exactly_once_v2). BENCH_KSTREAMS=0
// leaves it out; BENCH_KSTREAMS_THREADS sets its num.stream.threads
// (default: one per core). Its triggers are checked against cartCheck, computed from
// the backlog itself: a peer that drained fast but emitted other triggers
// fails the benchmark.

const (
	// kstreamsStage1 is the cart delay, as the goka peer's default and the
	// example rules' cart_abandoned stage 1.
	kstreamsStage1 = time.Hour
	// kstreamsPunctuate is the peer's stream-time punctuation interval:
	// a check due within it of a partition's last event time may still be
	// pending when the backlog is drained (see cartCheck's cutoff).
	kstreamsPunctuate = time.Second
	// kstreamsJVM: a fixed 1 GB heap (no resizing; the record cache and
	// the consumers' buffers live there) with the throughput collector.
	// RocksDB's memory is off heap, bounded by the peer's BoundedRocksDB.
	kstreamsJVM = "-Xms1g -Xmx1g -XX:+UseParallelGC"
)

// kstreamsRows builds the peer (cached by its build.sh) and runs it over
// the backlog in each mode. Only on the real broker: the peer is a JVM
// Kafka client, which kfake is not a test bed for.
func kstreamsRows(b *testing.B, s settings, k *cluster, registryURL string, in inputs, check *cartResult) []row {
	if envInt(b, "BENCH_KSTREAMS", 1) != 1 {
		return nil
	}
	if k.name != "real" {
		logf("%s: the Kafka Streams peer runs on the real broker only", k.name)
		return nil
	}
	cp := buildKStreams(b)
	if check == nil { // the goka peer did not run: no checker yet
		c := cartCheck(b, k, registryURL, in)
		logf("%s cart check: %d cart_abandoned triggers due by %s (the backlog's checker)", k.name, len(c.want), c.cutoff.Format(time.RFC3339))
		check = &c
	}
	var rows []row
	for _, mode := range s.modes {
		rows = append(rows, runKStreams(b, s, k, registryURL, in, cp, mode, *check))
	}
	return rows
}

// buildKStreams runs the peer's build.sh and returns its class path.
func buildKStreams(b *testing.B) string {
	script, err := filepath.Abs("../peer/kstreams/build.sh")
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	cmd := exec.Command(script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("build the Kafka Streams peer (%s): %v", script, err)
	}
	logf("Kafka Streams peer built (or found built) in %s", time.Since(began).Round(time.Millisecond))
	return strings.TrimSpace(string(out))
}

// runKStreams runs the peer in mode over the backlog (its own application
// ID, from the oldest offset), measures it as runPeer measures goka, and
// fails unless its triggers are the checker's.
func runKStreams(b *testing.B, s settings, k *cluster, registryURL string, in inputs, cp, mode string, check cartResult) row {
	guarantee := map[string]string{"exactly_once": "exactly_once_v2", "at_least_once": "at_least_once"}[mode]
	if guarantee == "" {
		b.Fatalf("Kafka Streams peer: no guarantee for mode %q", mode)
	}
	r := row{name: "kstreams " + guarantee, peer: true}
	dir := workDir(b, "kstreams-"+mode)
	app := in.prefix + "kstreams-" + mode
	triggers := app + "-triggers"
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, s.partitions, 1, nil, triggers)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatalf("create the Kafka Streams peer's triggers topic: %v", err)
	}
	args := append(strings.Fields(kstreamsJVM), "-cp", cp, "triggerd.peer.kstreams.Main",
		"--brokers", strings.Join(k.brokers, ","), "--application-id", app, "--guarantee", guarantee,
		"--clickstream", in.topics.Clickstream, "--transactions", in.topics.Transactions, "--profiles", in.topics.Profiles,
		"--triggers", triggers, "--registry", registryURL, "--state-dir", filepath.Join(dir, "state"),
		"--stage1-ms", fmt.Sprint(kstreamsStage1.Milliseconds()), "--punctuate-ms", fmt.Sprint(kstreamsPunctuate.Milliseconds()))
	if n := envInt(b, "BENCH_KSTREAMS_THREADS", 0); n > 0 {
		args = append(args, "--threads", fmt.Sprint(n))
	}
	p := startProc(b, filepath.Join(dir, "kstreams.log"), "java", args...)
	defer p.stop(b)
	// A fresh application restores nothing: the first sample is taken
	// once it has committed, as goka's.
	waitCommitted(b, k, app, p.exited)
	d := drain(b, k, app, in.ends, p.cpu, p.exited, 60*time.Minute)
	r.events = d.events
	r.eventsPerSec = float64(d.events) / d.seconds
	r.cpuPerEvent = perEvent(d.cpu, d.events)
	r.peakRSS = p.peakRSS()
	r.kafkaPerEvent, r.busy = d.machine.kafkaPerEvent(k, d.events), d.machine.busyShare()
	logf("%s kstreams %s: drained %d events in %.1fs, %.0f events/s, %.1f µs CPU/event", k.name, guarantee, d.events, d.seconds, r.eventsPerSec, r.cpuPerEvent)
	logf("%s kstreams %s drain: %s", k.name, guarantee, d.machine.split(k, "kstreams", d.events))

	got := readTriggers(b, k, triggers, guarantee == "exactly_once_v2")
	verdict := check.compare(got)
	logf("%s kstreams %s triggers against the checker: %s", k.name, guarantee, verdict)
	if !check.matches(got) || (guarantee == "exactly_once_v2" && got.duplicates > 0) {
		b.Fatalf("Kafka Streams peer (%s) emitted other triggers than the checker: %s (log %s)", guarantee, verdict, p.logPath)
	}
	r.triggers = float64(len(got.due))
	r.note = fmt.Sprintf("Kafka Streams 4.4 Processor API, %s, RocksDB stores with caching, timer store + 1 s stream-time punctuator; "+
		"cart abandonment and counters only, no contact policy; triggers = the checker's (%d due by the cutoff)", guarantee, len(check.want))
	return r
}

// triggerSet is what a peer's triggers topic holds: each trigger ID's due
// time, and how many IDs came more than once.
type triggerSet struct {
	due        map[string]time.Time
	duplicates int
}

// readTriggers reads topic (read_committed) up to its last stable offsets;
// transactional as for consumeTo.
func readTriggers(b *testing.B, k *cluster, topic string, transactional bool) triggerSet {
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatalf("end offsets of %s: %v", topic, err)
	}
	set := triggerSet{due: map[string]time.Time{}}
	consumeTo(b, ctx, k, ends, transactional, func(r *kgo.Record) {
		var t struct {
			ID    string    `json:"id"`
			DueAt time.Time `json:"due_at"`
		}
		if err := json.Unmarshal(r.Value, &t); err != nil || t.ID == "" {
			b.Fatalf("%s: a trigger that is not the peers' JSON (%v): %q", topic, err, r.Value)
		}
		if _, ok := set.due[t.ID]; ok {
			set.duplicates++
		}
		set.due[t.ID] = t.DueAt
	})
	return set
}

// consumeTo reads every record before ends (read_committed) and hands it
// to each. transactional says the topic's producer writes transactions: a
// partition's end is then its last record's offset plus 2 (the commit
// marker, which the client reads but does not return, is the last offset
// before the end), else plus 1.
func consumeTo(b *testing.B, ctx context.Context, k *cluster, ends kadm.ListedOffsets, transactional bool, each func(*kgo.Record)) {
	parts := map[string]map[int32]kgo.Offset{}
	left := map[string]map[int32]bool{}
	n := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if parts[o.Topic] == nil {
				parts[o.Topic], left[o.Topic] = map[int32]kgo.Offset{}, map[int32]bool{}
			}
			parts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
			left[o.Topic][o.Partition] = true
			n++
		}
	})
	if n == 0 {
		return
	}
	slack := int64(1)
	if transactional {
		slack = 2
	}
	cl := k.client(b, kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for n > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			b.Fatalf("read to the end offsets: %v (%d partitions short)", err, n)
		}
		fs.EachError(func(t string, p int32, err error) { b.Fatalf("fetch %s/%d: %v", t, p, err) })
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			end, _ := ends.Lookup(p.Topic, p.Partition)
			for _, r := range p.Records {
				if r.Offset >= end.Offset {
					break
				}
				each(r)
				if r.Offset+slack >= end.Offset && left[p.Topic][p.Partition] {
					left[p.Topic][p.Partition] = false
					n--
				}
			}
		})
	}
}

// cartResult is the checker's answer: the cart_abandoned triggers (ID and
// due time) of the backlog with a due time at or before cutoff.
type cartResult struct {
	want   map[string]time.Time
	cutoff time.Time
}

// cartCheck computes, from the backlog's events as they are in Kafka, the
// triggers of the peers' logic in event-time order per customer: an
// add_to_cart, or a remove_from_cart that leaves items (one removed per
// event, as the peers do), replaces the customer's check with one due
// stage1 later; a purchase or an emptied cart removes it; a check fires
// when its due time passes before the customer's next event (a next event
// at the due time itself comes first) and the cart holds items. Cutoff: the earliest of the
// partitions' last event times less the punctuation interval, by which
// every partition's stream time has passed and punctuated.
func cartCheck(b *testing.B, k *cluster, registryURL string, in inputs) cartResult {
	reg, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		b.Fatal(err)
	}
	decs := map[string]*schemas.Decoder{}
	for topic, src := range map[string]schemas.Source{in.topics.Clickstream: schemas.SourceClickstream,
		in.topics.Transactions: schemas.SourceTransaction, in.topics.Profiles: schemas.SourceProfile} {
		if decs[topic], err = schemas.NewDecoder(src, schemas.FormatAvro, reg); err != nil {
			b.Fatal(err)
		}
	}
	byCustomer := map[string][]cartEvent{}
	lastAt := map[int32]int64{} // per partition, ms
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var ev schemas.Event
	consumeTo(b, ctx, k, in.ends, false, func(r *kgo.Record) {
		if err := decs[r.Topic].Decode(r.Value, &ev); err != nil {
			b.Fatalf("checker: decode %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		at := ev.Time.UnixMilli()
		lastAt[r.Partition] = max(lastAt[r.Partition], at)
		switch ev.Type {
		case "add_to_cart", "remove_from_cart", "purchase":
			c := string(ev.Customer)
			byCustomer[c] = append(byCustomer[c], cartEvent{at: at, id: ev.ID, kind: ev.Type, quantity: ev.Quantity})
		}
	})
	if len(lastAt) == 0 {
		b.Fatal("checker: the backlog is empty")
	}
	cutoffMs := int64(1 << 62)
	for _, at := range lastAt {
		cutoffMs = min(cutoffMs, at)
	}
	cutoffMs -= kstreamsPunctuate.Milliseconds()
	return cartResult{want: abandonedCarts(byCustomer, kstreamsStage1.Milliseconds(), cutoffMs), cutoff: time.UnixMilli(cutoffMs).UTC()}
}

// cartEvent is what the checker keeps of a cart event.
type cartEvent struct {
	at       int64 // event time, ms
	id       string
	kind     schemas.EventType
	quantity int32
}

// abandonedCarts is cartCheck's logic over each customer's cart events:
// the IDs and due times of the triggers due by cutoffMs.
func abandonedCarts(byCustomer map[string][]cartEvent, stage1, cutoffMs int64) map[string]time.Time {
	want := map[string]time.Time{}
	for c, evs := range byCustomer {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
		var items int32
		occ, due := "", int64(-1)
		fire := func() {
			if due >= 0 && due <= cutoffMs && items > 0 {
				want[c+"/cart_abandoned/1/"+occ] = time.UnixMilli(due).UTC()
			}
			due = -1
		}
		for _, e := range evs {
			if due >= 0 && due < e.at {
				fire()
			}
			switch e.kind {
			case "add_to_cart":
				items += e.quantity
				occ, due = e.id, e.at+stage1
			case "remove_from_cart":
				items = max(items-1, 0)
				if occ, due = e.id, -1; items > 0 {
					due = e.at + stage1
				}
			case "purchase":
				items, occ, due = 0, "", -1
			}
		}
		fire()
	}
	return want
}

// matches reports whether got holds exactly the checker's triggers up to
// the cutoff (a trigger due after it may or may not have fired yet).
func (c cartResult) matches(got triggerSet) bool {
	missing, extra := c.diff(got)
	return missing == 0 && extra == 0
}

func (c cartResult) diff(got triggerSet) (missing, extra int) {
	for id := range c.want {
		if _, ok := got.due[id]; !ok {
			missing++
		}
	}
	for id, due := range got.due {
		if _, ok := c.want[id]; !ok && !due.After(c.cutoff) {
			extra++
		}
	}
	return missing, extra
}

func (c cartResult) compare(got triggerSet) string {
	missing, extra := c.diff(got)
	return fmt.Sprintf("%d triggers (%d more than once), checker %d due by the cutoff: %d missing, %d not the checker's",
		len(got.due), got.duplicates, len(c.want), missing, extra)
}

// printVsKStreams prints the vs_kstreams line: triggerd's exactly-once run
// against the peer's exactly_once_v2 run (and at-least-once against
// at_least_once), events/s and CPU per event.
func printVsKStreams(sb *strings.Builder, k *cluster, rows []row) {
	find := func(name string) *row {
		for i := range rows {
			if rows[i].name == name && rows[i].events > 0 {
				return &rows[i]
			}
		}
		return nil
	}
	for _, pair := range [][2]string{
		{"triggerd exactly_once", "kstreams exactly_once_v2"}, {"triggerd at_least_once", "kstreams at_least_once"},
		{"triggerd cart-only exactly_once", "kstreams exactly_once_v2"}, {"triggerd cart-only at_least_once", "kstreams at_least_once"},
	} {
		ours, ks := find(pair[0]), find(pair[1])
		if ours == nil || ks == nil {
			continue
		}
		fmt.Fprintf(sb, "vs_kstreams: %s events_per_s ours=%.0f kstreams=%.0f ratio=%.2f cpu_us_per_event ours=%.1f kstreams=%.1f ratio=%.2f\n",
			strings.TrimPrefix(pair[0], "triggerd "), ours.eventsPerSec, ks.eventsPerSec, ours.eventsPerSec/ks.eventsPerSec,
			ours.cpuPerEvent, ks.cpuPerEvent, ks.cpuPerEvent/max(ours.cpuPerEvent, 1e-9))
	}
	if find("kstreams exactly_once_v2") != nil || find("kstreams at_least_once") != nil {
		fmt.Fprintf(sb, "  (cluster=%s; ours = full example rules and contact policy, or cart-only: the peer's work; kstreams = cart tracking, counters and cart abandonment only; cpu ratio = kstreams/ours)\n", k.name)
	}
}

// TestAbandonedCarts checks the checker itself on hand-made carts (no
// Kafka): what fires, what a purchase or a later change cancels, the
// cutoff, and the tie at the due time.
func TestAbandonedCarts(t *testing.T) {
	const h = 3_600_000 // the stage1 delay in ms
	add := func(at int64, id string, q int32) cartEvent {
		return cartEvent{at: at, id: id, kind: "add_to_cart", quantity: q}
	}
	rm := func(at int64, id string) cartEvent { return cartEvent{at: at, id: id, kind: "remove_from_cart"} }
	buy := func(at int64) cartEvent { return cartEvent{at: at, id: "p", kind: "purchase"} }
	got := abandonedCarts(map[string][]cartEvent{
		"left":     {add(0, "a1", 1)},                             // fires at h
		"changed":  {add(0, "a1", 1), add(10, "a2", 2)},           // only the last change fires
		"bought":   {add(0, "a1", 1), buy(h - 1)},                 // bought before due: nothing
		"late-buy": {buy(h + 1), add(0, "a1", 1)},                 // bought after due (out of order in): fires first
		"tie":      {add(0, "a1", 1), buy(h)},                     // bought at the due time: nothing
		"emptied":  {add(0, "a1", 1), rm(5, "r1")},                // emptied: nothing
		"left-one": {add(0, "a1", 2), rm(5, "r1")},                // one left: the removal's check fires
		"too-late": {add(2*h, "a1", 1)},                           // due after the cutoff: not counted
		"no-items": {add(0, "a1", 0)},                             // nothing in the cart: nothing
		"refilled": {add(0, "a1", 1), buy(5), add(h+10, "a3", 1)}, // the second cart is due after the cutoff
	}, h, 2*h)
	want := map[string]time.Time{
		"left/cart_abandoned/1/a1":     time.UnixMilli(h).UTC(),
		"changed/cart_abandoned/1/a2":  time.UnixMilli(h + 10).UTC(),
		"late-buy/cart_abandoned/1/a1": time.UnixMilli(h).UTC(),
		"left-one/cart_abandoned/1/r1": time.UnixMilli(h + 5).UTC(),
	}
	if len(got) != len(want) {
		t.Fatalf("got %d triggers %v, want %d %v", len(got), got, len(want), want)
	}
	for id, due := range want {
		if !got[id].Equal(due) {
			t.Errorf("%s: got due %v, want %v", id, got[id], due)
		}
	}
}
