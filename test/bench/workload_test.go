package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// BenchmarkWorkload drives the shop workload (cmd/triggerd/workload with
// AllKinds and Attributes: page and product views, cart changes, purchases,
// coupons, profile updates, Zipf-skewed, ~300-byte Avro events, 12
// partitions) through "triggerd run" (a child process, so its CPU time and
// peak RSS are its own) with the full example rules, its contact policy and
// one instant rule for the latency probe, on the real broker (when
// TRIGGERD_KAFKA_BROKERS is set) and on kfake, in both delivery
// guarantees, then the goka peer on the same input. It prints one table and
// the vs_goka line per cluster. Every figure is measured in the run.
//
// Phases per cluster: the input backlog is written once (event times spread
// over BENCH_SPAN up to now); per mode a fresh changelog is seeded with
// BENCH_STATE_CUSTOMERS customers each holding one timer due in 30 days
// (pending timers and state size), the processor starts, restores (restore
// rate), drains the backlog (events/s, CPU µs/event), takes in events
// produced flat out for BENCH_SATURATE (the end-to-end maximum, e2e_ev/s:
// the generator and the broker's produce path on the same cores), then live
// traffic at half that maximum with event time = wall clock (latency of the instant
// rule's triggers, read read_committed; timer fire lag from the processor's
// histogram; peak RSS).
//
//	make bench-quick
//	make bench BENCH=Workload
func BenchmarkWorkload(b *testing.B) {
	s := loadSettings(b)
	bin := harness.BuildTriggerd(b)
	var peer, floor string
	if s.goka {
		peer = buildPeer(b)
	}
	if s.floor {
		floor = buildFloor(b)
	}
	for _, cl := range s.clusters {
		b.Run(cl, func(b *testing.B) {
			k := openCluster(b, cl)
			s := s
			if cl == "kfake" {
				s.stateCustomers = s.kfakeStateCustomers
			}
			results := runCluster(b, s, k, bin, peer, floor)
			printTable(b, s, k, results)
		})
	}
}

// cluster is one Kafka under test.
type cluster struct {
	name    string
	brokers []string
	// brokerPID is the real broker's process (BENCH_BROKER_PID), whose CPU
	// time the benchmark reports; 0 when unknown.
	brokerPID int
}

func openCluster(b *testing.B, name string) *cluster {
	switch name {
	case "real":
		addr := os.Getenv("TRIGGERD_KAFKA_BROKERS")
		if addr == "" {
			b.Skip("real: TRIGGERD_KAFKA_BROKERS is not set (make bench starts the broker)")
		}
		return &cluster{name: "real", brokers: strings.Split(addr, ","), brokerPID: brokerPID()}
	case "kfake":
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			b.Fatalf("kfake: %v", err)
		}
		b.Cleanup(c.Close)
		return &cluster{name: "kfake", brokers: c.ListenAddrs()}
	}
	b.Fatalf("BENCH_CLUSTERS: unknown cluster %q (real, kfake)", name)
	return nil
}

func (c *cluster) client(b *testing.B, opts ...kgo.Opt) *kgo.Client {
	b.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, opts...)...)
	if err != nil {
		b.Fatalf("kafka client: %v", err)
	}
	b.Cleanup(cl.Close)
	return cl
}

// row is one line of the table.
type row struct {
	name          string
	events        int64
	eventsPerSec  float64
	cpuPerEvent   float64 // µs
	kafkaPerEvent float64 // µs: the broker's CPU in the drain (machineCPU.kafkaPerEvent)
	busy          float64 // the machine's busy share in the drain, 0-1
	e2eRate       float64 // the end-to-end maximum (runSaturated)
	liveRate      float64
	latency       []time.Duration
	fireLagP99    string
	timerLag      []time.Duration // the timer probes', due to read (live phase)
	timersFired   float64
	pending       float64
	restoreRecs   int64
	restoreRate   float64 // records/s per partition
	restoreSecs   float64
	peakRSS       int64
	triggers      float64
	note          string
	avgEventBytes float64
	// floor marks the Kafka floor's rows (runFloor): not a processor,
	// never "ours" in the vs_goka line.
	floor bool
	// peer marks a peer's row other than goka's (kstreams_test.go):
	// never "ours" either.
	peer bool
	// cartOnly marks triggerd running the peers' work (runOurs): compared
	// with the peers in lines of its own.
	cartOnly bool
}

type inputs struct {
	prefix string
	topics processor.Topics
	bytes  float64
	n      int
	ends   kadm.ListedOffsets // the backlog's end
}

func runCluster(b *testing.B, s settings, k *cluster, bin, peer, floor string) []row {
	registry := srfake.New()
	b.Cleanup(registry.Close)
	reg, err := sr.NewClient(sr.URLs(registry.URL()))
	if err != nil {
		b.Fatal(err)
	}
	in := writeInputs(b, s, k, reg)
	var rows []row
	// The peer and the floor first: every run drains the same backlog,
	// and only triggerd's runs add live traffic after it.
	var check *cartResult
	if peer != "" {
		r, c := runPeer(b, s, k, registry.URL(), in, peer)
		rows, check = append(rows, r), &c
	}
	rows = append(rows, kstreamsRows(b, s, k, registry.URL(), in, check)...)
	if floor != "" {
		for _, mode := range s.modes {
			rows = append(rows, runFloor(b, s, k, in, floor, mode))
		}
	}
	// triggerd on the peers' work, before the full runs: it only drains,
	// so the backlog stays the peers' (the full runs add live traffic).
	if s.ours && envInt(b, "BENCH_CART_ONLY", 1) == 1 {
		for _, mode := range s.modes {
			rows = append(rows, runOurs(b, s, k, registry.URL(), reg, in, bin, mode, true))
		}
	}
	for i, mode := range s.modes {
		if !s.ours || envInt(b, "BENCH_FULL", 1) != 1 {
			break
		}
		if i > 0 {
			// The earlier mode's saturation and live traffic follow
			// the backlog on its topics: a drain there would process
			// it too, past the backlog's end, and count its CPU.
			in = writeInputs(b, s, k, reg)
		}
		r := runOurs(b, s, k, registry.URL(), reg, in, bin, mode, false)
		rows = append(rows, r)
	}
	if s.ours {
		rows = append(rows, rawRows(b, s, k, registry.URL(), reg, bin, rows)...) // raw_test.go
	}
	for i := range rows {
		rows[i].avgEventBytes = in.bytes
	}
	return rows
}

// writeInputs creates the input topics and writes the backlog: s.events
// events of s.customers customers, event times spread evenly over s.span
// up to now.
func writeInputs(b *testing.B, s settings, k *cluster, reg *sr.Client) inputs {
	prefix := fmt.Sprintf("bench%d-", time.Now().UnixNano()%1e9)
	in := inputs{prefix: prefix, topics: processor.Topics{
		Clickstream: prefix + "clickstream", Transactions: prefix + "transactions", Profiles: prefix + "profiles",
	}, n: s.events}
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	forever := "-1"
	topics := []string{in.topics.Clickstream, in.topics.Transactions, in.topics.Profiles}
	resp, err := adm.CreateTopics(ctx, s.partitions, 1, map[string]*string{"retention.ms": &forever}, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatalf("create input topics: %v", err)
	}
	harness.WaitTopics(b, ctx, adm, s.partitions, topics...)

	w := newEventWriter(b, k, reg, in.topics, s.partitions)
	wc := workload.DefaultConfig()
	wc.Customers, wc.AllKinds, wc.Attributes, wc.Seed = s.customers, true, true, 42
	gen := workload.New(wc)
	start := time.Now().Add(-s.span)
	step := s.span / time.Duration(max(s.events, 1))
	began := time.Now()
	var ev schemas.Event
	for i := range s.events {
		gen.Next(start.Add(time.Duration(i)*step), &ev)
		w.write(&ev)
	}
	w.flush()
	in.ends = endOffsets(b, k, topics...)
	in.bytes = float64(w.bytes.Load()) / float64(max(s.events, 1))
	logf("%s: wrote %d input events (%.0f B each on average) in %s", k.name, s.events, in.bytes, time.Since(began).Round(time.Millisecond))
	return in
}

// eventWriter produces events asynchronously, Avro-encoded, keyed and
// partitioned as Kafka's default partitioner does.
type eventWriter struct {
	b          *testing.B
	cl         *kgo.Client
	encs       map[schemas.Source]*schemas.EventEncoder
	topics     map[schemas.Source]string
	partitions int32
	bytes      atomic.Int64
	mu         sync.Mutex
	err        error
}

func newEventWriter(b *testing.B, k *cluster, reg *sr.Client, t processor.Topics, partitions int32) *eventWriter {
	w := &eventWriter{b: b, partitions: partitions, encs: map[schemas.Source]*schemas.EventEncoder{},
		topics: map[schemas.Source]string{
			schemas.SourceClickstream: t.Clickstream, schemas.SourceTransaction: t.Transactions, schemas.SourceProfile: t.Profiles,
		}}
	w.cl = k.client(b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000))
	for src, topic := range w.topics {
		enc, err := schemas.NewEventEncoder(context.Background(), src, schemas.FormatAvro, reg, topic+"-value")
		if err != nil {
			b.Fatalf("encoder: %v", err)
		}
		w.encs[src] = enc
	}
	return w
}

func (w *eventWriter) write(ev *schemas.Event) {
	val, err := w.encs[ev.Source].Encode(nil, ev)
	if err != nil {
		w.b.Fatalf("encode: %v", err)
	}
	w.bytes.Add(int64(len(val)))
	rec := &kgo.Record{Topic: w.topics[ev.Source], Partition: harness.PartitionOf(string(ev.Customer), w.partitions),
		Key: []byte(ev.Customer), Value: val, Timestamp: ev.Time}
	w.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
	})
}

func (w *eventWriter) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := w.cl.Flush(ctx); err != nil {
		w.b.Fatalf("flush: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		w.b.Fatalf("produce: %v", w.err)
	}
}

// drainResult is what drain measured.
type drainResult struct {
	events  int64
	seconds float64
	cpu     time.Duration
	machine machineCPU // where the machine's CPU went meanwhile
}

// endOffsets lists the current end offsets of topics.
func endOffsets(b *testing.B, k *cluster, topics ...string) kadm.ListedOffsets {
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatalf("end offsets: %v", err)
	}
	return ends
}

// drain waits until group has committed every input record up to ends,
// sampling its committed offsets and the process's CPU time every 100 ms.
// Call it when the processor is ready to process (restored): the rate and
// CPU are taken from the first sample to the last.
func drain(b *testing.B, k *cluster, group string, ends kadm.ListedOffsets, cpu func() time.Duration, alive func() error, timeout time.Duration) drainResult {
	adm := kadm.NewClient(k.client(b))
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var (
		first   = true
		done0   int64
		firstAt time.Time
		m0      machineCPU
	)
	deadline := time.Now().Add(timeout)
	for {
		if err := alive(); err != nil {
			b.Fatalf("processor died: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		committed, err := adm.FetchOffsets(ctx, group)
		cancel()
		now, m := time.Now(), sampleMachine(cpu, k.brokerPID)
		if err == nil {
			var done int64
			ends.Each(func(o kadm.ListedOffset) {
				if got, ok := committed.Lookup(o.Topic, o.Partition); ok && got.At > 0 {
					done += min(got.At, o.Offset)
				}
			})
			if first {
				first, done0, firstAt, m0 = false, done, now, m
			} else if done >= total {
				d := m.sub(m0)
				return drainResult{events: done - done0, seconds: now.Sub(firstAt).Seconds(), cpu: d.measured, machine: d}
			}
		}
		if now.After(deadline) {
			b.Fatalf("group %s did not commit the backlog within %s", group, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func printTable(b *testing.B, s settings, k *cluster, rows []row) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n== triggerd benchmark: cluster=%s partitions=%d customers=%d backlog_events=%d avg_event_bytes=%.0f state_customers=%d(+1 timer each) live=%s lateness=%s GOMAXPROCS-of-host=%d\n",
		k.name, s.partitions, s.customers, s.events, firstBytes(rows), s.stateCustomers, s.live, s.lateness, numCPU())
	fmt.Fprintf(&sb, "%-32s %10s %9s %11s %5s %9s %10s %9s %9s %9s %11s %9s %9s %11s %12s %9s %9s\n",
		"run", "events/s", "cpu_us/ev", "kafka_us/ev", "busy", "e2e_ev/s", "live_ev/s", "lat_p50", "lat_p99", "lat_p99.9", "fire_lag99", "timer_p99", "fired", "pending", "restore/s/p", "restored", "peak_rss")
	for _, r := range rows {
		p50, p99, p999 := quantile(r.latency, 0.5), quantile(r.latency, 0.99), quantile(r.latency, 0.999)
		// A backlog drained before the drain's first sample (tiny sizes,
		// make bench-quick) has no figures: "-", not zeros.
		rate, cpu, kafka, busy := "-", "-", "-", "-"
		if r.events > 0 {
			rate, cpu, busy = fmt.Sprintf("%.0f", r.eventsPerSec), fmt.Sprintf("%.1f", r.cpuPerEvent), fmt.Sprintf("%.0f%%", 100*r.busy)
			if r.kafkaPerEvent >= 0 {
				kafka = fmt.Sprintf("%.1f", r.kafkaPerEvent)
			}
		}
		fmt.Fprintf(&sb, "%-32s %10s %9s %11s %5s %9.0f %10.0f %9s %9s %9s %11s %9s %9.0f %11.0f %12.0f %9d %8.0fM\n",
			r.name, rate, cpu, kafka, busy, r.e2eRate, r.liveRate, p50, p99, p999, r.fireLagP99, quantile(r.timerLag, 0.99), r.timersFired, r.pending,
			r.restoreRate, r.restoreRecs, float64(r.peakRSS)/(1<<20))
	}
	for _, r := range rows {
		if r.note != "" {
			fmt.Fprintf(&sb, "  %s: %s\n", r.name, r.note)
		}
		if r.events == 0 {
			fmt.Fprintf(&sb, "  %s: the backlog was drained before the first sample; raise BENCH_EVENTS to measure it\n", r.name)
		}
	}
	kafka := "the broker's process"
	if k.name == "kfake" {
		kafka = "kfake's, this benchmark process"
	}
	fmt.Fprintf(&sb, "  kafka_us/ev: the broker's CPU per event in the drain (%s); busy: the share of the machine's CPU in use then, all cores\n", kafka)
	fmt.Fprintf(&sb, "  fire_lag99: the processor's fire-lag histogram (due to fired), p99 bucket; timer_p99: a timer probe's due time to its trigger read (read_committed), p99\n")
	var ours, oursCart, goka *row
	for i := range rows {
		switch {
		case rows[i].name == "goka":
			goka = &rows[i]
		case rows[i].floor, rows[i].peer:
		case rows[i].cartOnly:
			if oursCart == nil || rows[i].eventsPerSec > oursCart.eventsPerSec {
				oursCart = &rows[i]
			}
		case ours == nil || rows[i].eventsPerSec > ours.eventsPerSec:
			ours = &rows[i]
		}
	}
	if goka != nil && goka.eventsPerSec > 0 {
		if ours != nil {
			fmt.Fprintf(&sb, "vs_goka: events_per_s ours=%.0f goka=%.0f ratio=%.2f\n", ours.eventsPerSec, goka.eventsPerSec, ours.eventsPerSec/goka.eventsPerSec)
			fmt.Fprintf(&sb, "  (cluster=%s; ours = %s, the faster of our modes, full example rules; goka = cart tracking, counters and cart abandonment only)\n", k.name, ours.name)
		}
		if oursCart != nil {
			fmt.Fprintf(&sb, "vs_goka: cart-only events_per_s ours=%.0f goka=%.0f ratio=%.2f\n", oursCart.eventsPerSec, goka.eventsPerSec, oursCart.eventsPerSec/goka.eventsPerSec)
			fmt.Fprintf(&sb, "  (ours = %s: the same work as goka)\n", oursCart.name)
		}
	}
	printVsKStreams(&sb, k, rows)
	sb.WriteString(breakdownLines()) // breakdown_test.go
	// One write, so that the table is not interleaved with the log.
	fmt.Print(sb.String())
	for _, r := range rows {
		b.ReportMetric(r.eventsPerSec, strings.ReplaceAll(r.name, " ", "_")+"_events/s")
	}
}

func firstBytes(rows []row) float64 {
	for _, r := range rows {
		if r.avgEventBytes > 0 {
			return r.avgEventBytes
		}
	}
	return 0
}

// quantile returns the q-quantile of d (nearest rank), "-" when empty.
func quantile(d []time.Duration, q float64) string {
	if len(d) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	v := s[i]
	if v >= time.Second {
		return v.Round(10 * time.Millisecond).String()
	}
	return v.Round(100 * time.Microsecond).String()
}

func workDir(b *testing.B, name string) string {
	d := filepath.Join(harness.WorkDir(b), name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}
