package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// probeRule fires at once on every purchase. Its triggers' due time is the
// purchase's event time, so "read time − due time" is the event-to-trigger
// latency. Anomaly family: exempt from the contact policy, as risk is.
const probeRule = `
id: bench_probe
description: The benchmark's latency probe - every purchase, at once.
version: 1
family: anomaly
channel: risk
on: [purchase]
`

// timerProbeRule schedules a timer 2 s after one purchase in ten (event
// IDs ending in 7), whose trigger's due time is the timer's: "read time −
// due time" is the timer fire lag end to end (the watermark passing the due
// time plus the lateness, the firing cycle, its commit), measured on
// thousands of timers while the seeded timers stay pending. The processor's
// own fire-lag histogram counts from the due time to the firing, and every
// timer in it, those due before they were scheduled too. One purchase in
// ten keeps the probe's own work (a timer set and fired, a trigger) under
// 1% of the events: on every purchase it raised the changelog records per
// event from 0.8 to 1.0.
const timerProbeRule = `
id: bench_timer_probe
description: The benchmark's timer probe - a follow-up 2 s after one purchase in ten.
version: 1
family: anomaly
channel: risk
sequence:
  start:
    on: [purchase]
    when: event.id.endsWith("7")
    key: event.order_id
  stages:
    - {delay: 2s}
`

// benchRules is the example rules file with the probe rules added.
func benchRules(b *testing.B) []byte {
	var doc yaml.Node
	if err := yaml.Unmarshal(rules.Example(), &doc); err != nil {
		b.Fatal(err)
	}
	var probes []*yaml.Node
	for _, src := range []string{probeRule, timerProbeRule} {
		var probe yaml.Node
		if err := yaml.Unmarshal([]byte(src), &probe); err != nil {
			b.Fatal(err)
		}
		probes = append(probes, probe.Content[0])
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "rules" {
			top.Content[i+1].Content = append(top.Content[i+1].Content, probes...)
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rules.Parse("bench", out); err != nil {
		b.Fatalf("bench rules: %v", err)
	}
	return out
}

// runOurs measures triggerd run in one delivery mode on the inputs in.
//
// With cartOnly it runs the peers' work instead: only the cart rule,
// no contact policy, no seeded state, and only the drain.
func runOurs(b *testing.B, s settings, k *cluster, registryURL string, reg *sr.Client, in inputs, bin, mode string, cartOnly bool) row {
	tag := mode // names the run's directory, group and output topics
	if cartOnly {
		tag = "cart-only-" + mode
	}
	r := row{name: "triggerd " + strings.ReplaceAll(tag, "-only-", "-only "), cartOnly: cartOnly}
	dir := workDir(b, tag)
	cfg := processor.DefaultConfig()
	cfg.Brokers = k.brokers
	cfg.Guarantee = processor.Guarantee(mode)
	cfg.Group = in.prefix + tag
	cfg.InstanceID = "bench"
	cfg.Topics = in.topics
	cfg.Topics.Triggers = in.prefix + tag + "-triggers"
	cfg.Topics.DeadLetter = in.prefix + tag + "-dlq"
	cfg.Topics.Changelog = in.prefix + tag + "-changelog"
	cfg.Topics.Suppressions = in.prefix + tag + "-suppressions"

	ruleText := rules.CartOnlyYAML(kstreamsStage1, 0)
	if !cartOnly {
		seeded := seedState(b, s, k, cfg)
		logf("%s %s: seeded %d changelog records", k.name, mode, seeded)
		ruleText = benchRules(b)
	}
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, ruleText, 0o600); err != nil {
		b.Fatal(err)
	}
	ops := harness.FreeAddr(b)
	config := func(group string, topics processor.Topics) string {
		return fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  guarantee: %s
  instance_id: bench
  topics: {clickstream: %s, transactions: %s, profiles: %s, triggers: %s, dead_letter: %s, changelog: %s, suppressions: %s}
  encodings: {clickstream: avro, transactions: avro, profiles: avro, triggers: avro}
  registry: {url: %s}
  replication_factor: 1
  start_from: earliest
  idle_advance: true
  idle_grace: %s
  lateness: %s
  compression: %s
state:
  dir: %s
  write_back_commits: %d
  cached_customers: %d
ops:
  addr: %s
  pprof: %t
rules:
  file: %s
  poll: 0s
log:
  level: info
`, strings.Join(k.brokers, ", "), group, mode, topics.Clickstream, topics.Transactions, topics.Profiles,
			cfg.Topics.Triggers, cfg.Topics.DeadLetter, cfg.Topics.Changelog, cfg.Topics.Suppressions, registryURL,
			s.idleGrace, s.lateness, s.compression, filepath.Join(dir, "state"), s.writeBack, s.cachedCustomers, ops, s.pprofDir != "", rulesFile)
	}
	confFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(confFile, []byte(config(cfg.Group, cfg.Topics)), 0o600); err != nil {
		b.Fatal(err)
	}
	var rss []string
	if s.settle {
		var peak int64
		r.restoreRecs, r.restoreRate, r.restoreSecs, peak = restoreAndSettle(b, s, k, cfg, dir, bin, ops, config)
		rss = append(rss, fmt.Sprintf("restore and settle %.0fM", float64(peak)/(1<<20)))
	}
	p := startProc(b, filepath.Join(dir, "triggerd.log"), bin, "run", "--config", confFile)
	defer p.stop(b)

	// Restore: every partition logs one line when it is caught up.
	if s.settle || cartOnly {
		// The store is caught up: nothing to restore, nothing logged.
		waitLogged(b, p, "partition assigned", int(s.partitions), 5*time.Minute)
	} else {
		r.restoreRecs, r.restoreRate, r.restoreSecs = waitRestore(b, p, s.partitions, 30*time.Minute)
	}
	rss = append(rss, fmt.Sprintf("restore %.0fM", float64(p.peakRSS())/(1<<20)))

	prof := startProfile(b, s, ops, fmt.Sprintf("%s-%s-drain", k.name, tag), s.pprofSecs)
	outputs := []string{cfg.Topics.Changelog, cfg.Topics.Triggers}
	before, outBefore := scrape(b, ops), endOffsets(b, k, outputs...)
	d := drain(b, k, cfg.Group, in.ends, p.cpu, p.exited, 60*time.Minute)
	after, outAfter := scrape(b, ops), endOffsets(b, k, outputs...)
	prof()
	logCycles(b, k.name, mode, d.events, before, after, outputs, outBefore, outAfter)
	rss = append(rss, fmt.Sprintf("drain %.0fM", float64(p.peakRSS())/(1<<20)))
	r.events = d.events
	r.eventsPerSec = float64(d.events) / d.seconds
	r.cpuPerEvent = float64(d.cpu.Microseconds()) / float64(max(d.events, 1))
	logf("%s %s: drained %d events in %.1fs, %.0f events/s, %.1f µs CPU/event", k.name, mode, d.events, d.seconds, r.eventsPerSec, r.cpuPerEvent)
	r.kafkaPerEvent, r.busy = d.machine.kafkaPerEvent(k, d.events), d.machine.busyShare()
	logf("%s %s drain: %s", k.name, mode, d.machine.split(k, "processor", d.events))
	if cartOnly {
		r.peakRSS = p.peakRSS()
		r.note = "the peers' work: the cart rule alone (stage 1 after " + kstreamsStage1.String() + "), no contact policy, no seeded state; drain only"
		return r
	}

	// The live traffic of an earlier run is input too: catch up before
	// the live phase so that it starts with no lag.
	drain(b, k, cfg.Group, endOffsets(b, k, cfg.Inputs()...), p.cpu, p.exited, 60*time.Minute)
	r.e2eRate = runSaturated(b, s, k, reg, in, cfg.Group, p.cpu, p.exited)
	rss = append(rss, fmt.Sprintf("saturation %.0fM", float64(p.peakRSS())/(1<<20)))
	logMemory(b, k.name, mode+" after saturation", scrape(b, ops))
	if s.pprofDir != "" {
		path := filepath.Join(s.pprofDir, fmt.Sprintf("%s-%s-heap.pprof", k.name, mode))
		if err := fetchProfile("http://"+ops+"/debug/pprof/heap", path); err != nil {
			logf("heap profile: %v", err)
		} else {
			logf("heap profile after the saturation phase written to %s", path)
		}
	}
	prof = startProfile(b, s, ops, fmt.Sprintf("%s-%s-live", k.name, mode), s.warmup+s.live)
	before, outBefore = scrape(b, ops), endOffsets(b, k, outputs...)
	rate := r.e2eRate / 2
	if s.liveRate > 0 {
		rate = s.liveRate
	}
	m0 := sampleMachine(p.cpu, k.brokerPID)
	live := runLive(b, s, k, reg, in, cfg.Topics.Triggers, ops, rate, p.exited)
	machine := sampleMachine(p.cpu, k.brokerPID).sub(m0)
	after, outAfter = scrape(b, ops), endOffsets(b, k, outputs...)
	prof()
	liveEvents := int64(live.rate * (s.warmup + s.live).Seconds())
	logCycles(b, k.name, mode+" live", liveEvents, before, after, outputs, outBefore, outAfter)
	// How busy the machine is at this rate: the latency waits for CPU the
	// processor shares with the broker and this process (the generator
	// and the trigger reader). Over the warm-up, the measured span and the
	// 2 s after it in which the last events are read.
	logf("%s %s live: %s", k.name, mode, machine.split(k, "processor", liveEvents))
	logMemory(b, k.name, mode+" after live", after)
	logf("%s %s live: latency p50/p99 %s/%s, of which event to fired %s/%s (the rest: the cycle's end and the reader); timer probes: %d, due to read p50/p99 %s/%s", k.name, mode,
		quantile(live.latency, 0.5), quantile(live.latency, 0.99), quantile(live.processed, 0.5), quantile(live.processed, 0.99),
		len(live.timerLag), quantile(live.timerLag, 0.5), quantile(live.timerLag, 0.99))
	r.liveRate, r.latency, r.fireLagP99, r.timersFired, r.pending, r.triggers = live.rate, live.latency, live.fireLagP99, live.fired, live.pending, live.triggers
	r.timerLag = live.timerLag
	r.peakRSS = p.peakRSS()
	rss = append(rss, fmt.Sprintf("live %.0fM", float64(r.peakRSS)/(1<<20)))
	logf("%s %s: peak RSS after each phase: %s", k.name, mode, strings.Join(rss, ", "))
	if live.behind > 0 {
		r.note = fmt.Sprintf("live phase: %d events still uncommitted at its end (did not keep up with the live rate)", live.behind)
	}
	return r
}

// restoreAndSettle (BENCH_SETTLE=1) restores the seeded state with a
// processor whose inputs are empty topics, in a group of its own, waits
// until Pebble has stopped compacting what the restore wrote, and stops it.
// The drain that follows starts on a store that is not compacting, so it
// pays only for the work Pebble defers until more is written (L0 under its
// trigger). It logs what settling cost and returns waitRestore's figures and
// the processor's peak RSS.
func restoreAndSettle(b *testing.B, s settings, k *cluster, cfg processor.Config, dir, bin, ops string, config func(string, processor.Topics) string) (int64, float64, float64, int64) {
	idle := cfg.Topics
	idle.Clickstream, idle.Transactions, idle.Profiles = cfg.Group+"-idle-clickstream", cfg.Group+"-idle-transactions", cfg.Group+"-idle-profiles"
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	resp, err := adm.CreateTopics(ctx, s.partitions, 1, nil, idle.Clickstream, idle.Transactions, idle.Profiles)
	cancel()
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatalf("create idle input topics: %v", err)
	}
	confFile := filepath.Join(dir, "config-settle.yaml")
	if err := os.WriteFile(confFile, []byte(config(cfg.Group+"-settle", idle)), 0o600); err != nil {
		b.Fatal(err)
	}
	p := startProc(b, filepath.Join(dir, "triggerd-settle.log"), bin, "run", "--config", confFile)
	defer p.stop(b)
	recs, rate, secs := waitRestore(b, p, s.partitions, 30*time.Minute)
	// Settled is when the processor has been idle (under 2% of a core) for
	// 5 s: compactions are its only work on empty inputs. (Neither the
	// compaction count, which counts finished ones, nor the debt, which
	// stays above zero when L0 is under its 8-sublevel trigger, says it.)
	const quiet, idleShare, timeout = 5 * time.Second, 0.02, 20 * time.Minute
	start, cpu0 := time.Now(), p.cpu()
	m0 := scrape(b, ops)
	debt0 := m0.sum("triggerd_store_compaction_debt_bytes")
	lastCPU, since := cpu0, time.Now()
	for {
		if err := p.exited(); err != nil {
			b.Fatalf("processor died while its store settled: %v", err)
		}
		if time.Since(start) > timeout {
			b.Fatalf("the store was still compacting %s after the restore", timeout)
		}
		time.Sleep(time.Second)
		c := p.cpu()
		if float64(c-lastCPU) > idleShare*float64(time.Second) {
			since = time.Now()
		} else if time.Since(since) >= quiet {
			break
		}
		lastCPU = c
	}
	m := scrape(b, ops)
	cpu := p.cpu() - cpu0
	logf("%s %s: the restore's compactions settled in %.1fs: %.1f s of processor CPU (%.2f µs per restored record), %.0f compactions; compaction debt from %.0f to %.0f MB, L0 %.0f sublevels",
		k.name, cfg.Guarantee, time.Since(start).Seconds()-quiet.Seconds(), cpu.Seconds(), float64(cpu.Microseconds())/float64(max(recs, 1)),
		m.sum("triggerd_store_compactions_total")-m0.sum("triggerd_store_compactions_total"), debt0/1e6, m.sum("triggerd_store_compaction_debt_bytes")/1e6, m.sum("triggerd_store_l0_sublevels"))
	return recs, rate, secs, p.peakRSS()
}

// seedState writes the changelog a processor would have left after serving
// s.stateCustomers customers, each with a cart and one timer due in 30
// days, spread over the partitions as the default partitioner does; every
// batch ends with its offsets record (input offsets 0: nothing consumed).
// It returns the number of records written.
func seedState(b *testing.B, s settings, k *cluster, cfg processor.Config) int {
	compact := "compact"
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	resp, err := adm.CreateTopic(ctx, s.partitions, 1, map[string]*string{"cleanup.policy": &compact}, cfg.Topics.Changelog)
	cancel()
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.Fatalf("create changelog: %v", err)
	}
	if s.stateCustomers == 0 {
		return 0
	}
	sc := state.DefaultConfig()
	sc.Dir = b.TempDir()
	store, err := state.Open(sc, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	cl := k.client(b, kgo.DefaultProduceTopic(cfg.Topics.Changelog), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(200_000))
	parts := make([]*state.Partition, s.partitions)
	pending := make([]int, s.partitions)
	for p := range parts {
		parts[p] = store.Partition(int32(p))
	}
	now := time.Now().UTC().Truncate(time.Second)
	records := 0
	flush := func(p int32) {
		sp := parts[p]
		for _, topic := range cfg.Inputs() {
			sp.SetOffset(topic, 0)
		}
		var recs []*kgo.Record
		if err := sp.Changes(func(key, value []byte) error {
			recs = append(recs, &kgo.Record{Key: bytes.Clone(key), Value: bytes.Clone(value), Partition: p})
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		res := cl.ProduceSync(ctx, recs...)
		cancel()
		if err := res.FirstErr(); err != nil {
			b.Fatalf("produce changelog: %v", err)
		}
		if err := sp.Commit(recs[len(recs)-1].Offset); err != nil {
			b.Fatal(err)
		}
		records += len(recs)
		pending[p] = 0
	}
	for i := range s.stateCustomers {
		id := schemas.CustomerID(fmt.Sprintf("s-%08d", i))
		p := harness.PartitionOf(string(id), s.partitions)
		sp := parts[p]
		cu, err := sp.Customer(id)
		if err != nil {
			b.Fatal(err)
		}
		at := now.Add(-time.Duration(i%86400) * time.Second)
		cu.FirstSeen, cu.LastSeen, cu.Events = at, at, int64(3+i%40)
		cu.Cart.Items = append(cu.Cart.Items, schemas.Item{ProductID: fmt.Sprintf("p-%d", i%500), Quantity: 1,
			UnitPrice: schemas.Money{Minor: int64(500 + i%20000), Currency: "EUR"}})
		cu.Cart.UpdatedAt, cu.Cart.LastEvent = at, fmt.Sprintf("seed-%d", i)
		if err := sp.Schedule(schemas.Timer{Customer: id, ID: "cart_abandoned", Due: now.Add(30 * 24 * time.Hour),
			Rule: "cart_abandoned", Stage: 1, Occurrence: cu.Cart.LastEvent}); err != nil {
			b.Fatal(err)
		}
		if pending[p]++; pending[p] == 5000 {
			flush(p)
		}
		if (i+1)%2_000_000 == 0 {
			logf("%s: seeded %d of %d state customers", k.name, i+1, s.stateCustomers)
		}
	}
	for p := range parts {
		if pending[p] > 0 {
			flush(int32(p))
		}
	}
	return records
}

// waitLogged waits until the processor's log has n lines with msg.
func waitLogged(b *testing.B, p *proc, msg string, n int, timeout time.Duration) {
	pollLog(b, p, fmt.Sprintf("%d %q lines", n, msg), timeout, func(data []byte) bool {
		return bytes.Count(data, []byte(`"msg":"`+msg+`"`)) >= n
	})
}

// pollLog reads the processor's log every 200 ms until done says it has what
// the caller waits for (what, for the error), failing the benchmark if the
// processor exits or timeout passes first.
func pollLog(b *testing.B, p *proc, what string, timeout time.Duration, done func(log []byte) bool) {
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(p.logPath)
		if err != nil {
			b.Fatal(err)
		}
		if done(data) {
			return
		}
		if err := p.exited(); err != nil {
			b.Fatalf("processor died waiting for %s: %v (log %s)", what, err, p.logPath)
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not logged within %s (log %s)", what, timeout, p.logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRestore reads the processor's log until every partition reported its
// restore, and returns the records restored, the rate per partition
// (records over the partitions' summed restore time) and the longest
// partition's time.
func waitRestore(b *testing.B, p *proc, partitions int32, timeout time.Duration) (int64, float64, float64) {
	var recs int64
	var secs, longest float64
	pollLog(b, p, fmt.Sprintf("the restore of %d partitions", partitions), timeout, func(log []byte) bool {
		recs, secs, longest = 0, 0, 0
		seen := map[int32]bool{}
		for line := range bytes.Lines(log) {
			if !bytes.Contains(line, []byte("restored partition from changelog")) {
				continue
			}
			var l struct {
				Partition int32   `json:"partition"`
				Records   int64   `json:"records"`
				Seconds   float64 `json:"seconds"`
			}
			if json.Unmarshal(line, &l) == nil && !seen[l.Partition] {
				seen[l.Partition] = true
				recs += l.Records
				secs += l.Seconds
				longest = max(longest, l.Seconds)
			}
		}
		return int32(len(seen)) == partitions
	})
	return recs, float64(recs) / max(secs, 1e-9), longest
}
