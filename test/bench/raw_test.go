package bench

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/triggerd/triggerd/cmd/triggerd/workload"
	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// The raw path's row: the same backlog as the co-partitioned rows (the
// generator, seed, customers, events and event times of writeInputs, the
// same seeded state), with the clickstream written raw, as a producer keyed
// by session writes it: keyed by a session of its customer (a new one every
// 3 clicks), placed by CRC32 of the session over a partition count of its
// own (the processor's + 1). triggerd runs with repartition.inputs:
// [clickstream], so every click goes through the repartition stage (decode,
// produce to the internal topic, commit) before a worker reads it.
//
// The stage starts with the process, before the workers have restored their
// state, so the drain is measured from the process's start (restore
// included) until the stage has committed every raw record and the workers
// every record of the internal and co-partitioned topics. The comparison is
// with a co-partitioned run measured the same way on the same backlog (the
// clickstream keyed by customer), given in the row's note; the table's
// "triggerd <mode>" row is measured from after the restore and is not
// comparable. BENCH_RAW=0 leaves both runs out. Only the drain is measured:
// the saturation and live columns are empty.

// rawRows runs the raw path in the first mode and logs how it compares with
// that mode's co-partitioned row (already in rows).
func rawRows(b *testing.B, s settings, k *cluster, registryURL string, reg *sr.Client, bin string, rows []row) []row {
	if envInt(b, "BENCH_RAW", 1) != 1 || len(s.modes) == 0 {
		return nil
	}
	mode := s.modes[0]
	cp := runRaw(b, s, k, registryURL, reg, bin, mode, false)
	r := runRaw(b, s, k, registryURL, reg, bin, mode, true)
	r.note = fmt.Sprintf("raw clickstream (%d raw partitions, keyed by session) through the repartition stage; from the process's start, "+
		"restore included: %.0f events/s, %.1f µs CPU/event; the co-partitioned path measured so on the same backlog: "+
		"%.0f events/s, %.1f µs CPU/event (raw/co-partitioned: %.2fx events/s, %.2fx CPU/event)",
		s.partitions+1, r.eventsPerSec, r.cpuPerEvent, cp.eventsPerSec, cp.cpuPerEvent,
		r.eventsPerSec/max(cp.eventsPerSec, 1), r.cpuPerEvent/max(cp.cpuPerEvent, 0.001))
	return []row{r}
}

// runRaw runs the backlog with the clickstream raw (or, raw false, keyed
// by customer) and measures from the process's start to the drained
// backlog.
func runRaw(b *testing.B, s settings, k *cluster, registryURL string, reg *sr.Client, bin, mode string, raw bool) row {
	// Not a peer: the flag keeps the row out of the "ours" pick of the
	// vs_goka line, which compares the co-partitioned path.
	r := row{name: "triggerd raw " + mode, peer: true}
	what := "raw"
	if !raw {
		what = "co-partitioned (from start)"
	}
	dir := workDir(b, strings.ReplaceAll(what, " ", "-")+"-"+mode)
	in, rawTopic, rawParts := writeRawInputs(b, s, k, reg, raw)
	cfg := processor.DefaultConfig()
	cfg.Brokers = k.brokers
	cfg.Guarantee = processor.Guarantee(mode)
	cfg.Group = in.prefix + "raw-" + mode
	cfg.InstanceID = "bench"
	cfg.Topics = in.topics
	cfg.Topics.Triggers = cfg.Group + "-triggers"
	cfg.Topics.DeadLetter = cfg.Group + "-dlq"
	cfg.Topics.Changelog = cfg.Group + "-changelog"
	cfg.Topics.Suppressions = cfg.Group + "-suppressions"
	repartition := ""
	if raw {
		cfg.Repartition.Inputs = []string{"clickstream"}
		repartition = "  repartition: {inputs: [clickstream]}\n"
	}
	seeded := seedState(b, s, k, cfg)
	logf("%s %s %s: seeded %d changelog records", k.name, what, mode, seeded)

	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, benchRules(b), 0o600); err != nil {
		b.Fatal(err)
	}
	ops := harness.FreeAddr(b)
	conf := fmt.Sprintf(`kafka:
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
%sstate:
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
`, strings.Join(k.brokers, ", "), cfg.Group, mode, rawTopic, in.topics.Transactions, in.topics.Profiles,
		cfg.Topics.Triggers, cfg.Topics.DeadLetter, cfg.Topics.Changelog, cfg.Topics.Suppressions, registryURL,
		s.idleGrace, s.lateness, s.compression, repartition, filepath.Join(dir, "state"), s.writeBack, s.cachedCustomers, ops, s.pprofDir != "", rulesFile)
	confFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	internal := cfg.RepartitionTopic(rawTopic)
	copart := endOffsets(b, k, in.topics.Transactions, in.topics.Profiles)
	rawEnds := endOffsets(b, k, rawTopic)
	if !raw {
		copart = endOffsets(b, k, in.topics.Clickstream, in.topics.Transactions, in.topics.Profiles)
	}
	adm := kadm.NewClient(k.client(b))
	committed := func(group string, ends kadm.ListedOffsets) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			got, found := offs.Lookup(o.Topic, o.Partition)
			ok = ok && found && got.At >= o.Offset
		})
		return ok
	}
	var internalEnds kadm.ListedOffsets // listed once the stage has committed every raw record
	if !raw {
		internalEnds = kadm.ListedOffsets{}
	}
	t0 := time.Now()
	p := startProc(b, filepath.Join(dir, "triggerd.log"), bin, "run", "--config", confFile)
	defer p.stop(b)
	m0 := sampleMachine(func() time.Duration { return 0 }, k.brokerPID)
	prof := startProfile(b, s, ops, fmt.Sprintf("%s-%s-%s", k.name, strings.ReplaceAll(what, " ", "-"), mode), s.pprofSecs)
	defer prof()
	deadline := time.Now().Add(60 * time.Minute)
	for {
		if err := p.exited(); err != nil {
			b.Fatalf("processor died: %v", err)
		}
		if internalEnds == nil && committed(cfg.RepartitionGroup(), rawEnds) {
			internalEnds = endOffsets(b, k, internal)
		}
		if internalEnds != nil && committed(cfg.Group, copart) && committed(cfg.Group, internalEnds) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s %s: the backlog was not drained within an hour", what, mode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d, secs := sampleMachine(p.cpu, k.brokerPID).sub(m0), time.Since(t0).Seconds()
	r.events = int64(s.events)
	r.eventsPerSec = float64(r.events) / secs
	r.cpuPerEvent = perEvent(d.measured, r.events)
	r.kafkaPerEvent, r.busy = d.kafkaPerEvent(k, r.events), d.busyShare()
	r.peakRSS = p.peakRSS()
	logf("%s %s %s: drained %d events (%d clickstream partitions) in %.1fs from the process's start, %.0f events/s, %.1f µs CPU/event; %s",
		k.name, what, mode, r.events, rawParts, secs, r.eventsPerSec, r.cpuPerEvent, d.split(k, "processor", r.events))
	return r
}

// writeRawInputs writes writeInputs' backlog with the clickstream raw (or,
// raw false, keyed by customer as writeInputs does): it returns the inputs,
// the clickstream topic and its partition count.
func writeRawInputs(b *testing.B, s settings, k *cluster, reg *sr.Client, raw bool) (inputs, string, int32) {
	prefix := fmt.Sprintf("bench%d-raw-", time.Now().UnixNano()%1e9)
	in := inputs{prefix: prefix, topics: processor.Topics{
		Clickstream: prefix + "clickstream", Transactions: prefix + "transactions", Profiles: prefix + "profiles",
	}, n: s.events}
	rawParts := s.partitions + 1
	if !raw {
		rawParts = s.partitions
	}
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	forever := "-1"
	conf := map[string]*string{"retention.ms": &forever}
	for topic, n := range map[string]int32{in.topics.Clickstream: rawParts, in.topics.Transactions: s.partitions, in.topics.Profiles: s.partitions} {
		resp, err := adm.CreateTopics(ctx, n, 1, conf, topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			b.Fatalf("create input topic %s: %v", topic, err)
		}
	}
	w := newEventWriter(b, k, reg, in.topics, s.partitions)
	wc := workload.DefaultConfig()
	wc.Customers, wc.AllKinds, wc.Attributes, wc.Seed = s.customers, true, true, 42
	gen := workload.New(wc)
	start := time.Now().Add(-s.span)
	step := s.span / time.Duration(max(s.events, 1))
	clicks := map[schemas.CustomerID]int{}
	var ev schemas.Event
	for i := range s.events {
		gen.Next(start.Add(time.Duration(i)*step), &ev)
		if !raw || ev.Source != schemas.SourceClickstream {
			w.write(&ev)
			continue
		}
		val, err := w.encs[ev.Source].Encode(nil, &ev)
		if err != nil {
			b.Fatalf("encode: %v", err)
		}
		w.bytes.Add(int64(len(val)))
		session := fmt.Sprintf("%s-session-%d", ev.Customer, clicks[ev.Customer]/3)
		clicks[ev.Customer]++
		w.cl.Produce(context.Background(), &kgo.Record{Topic: in.topics.Clickstream, Key: []byte(session), Value: val, Timestamp: ev.Time,
			Partition: int32(crc32.ChecksumIEEE([]byte(session)) % uint32(rawParts))}, func(_ *kgo.Record, err error) {
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		})
	}
	w.flush()
	in.bytes = float64(w.bytes.Load()) / float64(max(s.events, 1))
	logf("%s: wrote %d input events, the clickstream over %d partitions (raw %t)", k.name, s.events, rawParts, raw)
	return in, in.topics.Clickstream, rawParts
}
