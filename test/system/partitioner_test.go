package system

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// pyRouted is a customer the Python producer wrote, with the partitions
// the broker acknowledged for its records.
type pyRouted struct {
	Customer    string `json:"customer"`
	Clickstream int32  `json:"clickstream"`
	Profiles    int32  `json:"profiles"`
}

// partitionerRun is a triggerd child fed by Python confluent-kafka with its
// default partitioner.
type partitionerRun struct {
	c         *harness.Cluster
	bin, ops  string
	admin     string
	token     string
	parts     int32
	customers []pyRouted
	log       string
}

const pyPartitions = 4

// startPartitionerRun starts triggerd in the default configuration plus
// kafka.partitioner and an admin API with writes on, then has Python write
// a profile and a cart for each of n customers.
func startPartitionerRun(t *testing.T, partitioner string, n int) (*partitionerRun, *harness.Child, processor.Config) {
	t.Helper()
	needBroker(t)
	python := pythonWithKafka(t)
	c := harness.NewCluster(t)
	cfg := c.Topics(t, pyPartitions)
	dir := harness.WorkDir(t)
	logf, err := os.Create(filepath.Join(dir, "triggerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	r := &partitionerRun{c: c, bin: harness.BuildTriggerd(t), ops: harness.FreeAddr(t), admin: harness.FreeAddr(t),
		token: "partitioner-test-token", parts: pyPartitions, log: logf.Name()}
	conf := harness.WriteDefaultConfig(t, cfg, dir, r.ops, 3*time.Second, time.Hour, harness.DefaultConfigExtra{
		Kafka:    []string{"partitioner: " + partitioner},
		Sections: fmt.Sprintf("admin:\n  addr: %s\n  token: %s\n  allow_writes: true\n", r.admin, r.token),
	})
	ch := harness.NewChild(t, r.bin, conf, logf, r.ops)
	ch.Start()
	t.Cleanup(ch.Stop)
	waitReady(t, ch)
	for _, l := range runPython(t, python, "carts_default_partitioner.py", cfg.Brokers[0], cfg.Topics.Clickstream, cfg.Topics.Profiles,
		"py-"+partitioner, fmt.Sprint(n)) {
		var pr pyRouted
		if err := json.Unmarshal([]byte(l), &pr); err != nil {
			t.Fatalf("python wrote %q: %v", l, err)
		}
		r.customers = append(r.customers, pr)
	}
	if len(r.customers) != n {
		t.Fatalf("python reported %d customers, want %d", len(r.customers), n)
	}
	return r, ch, cfg
}

// crc32Of is librdkafka's consistent partitioner, computed here from zlib's
// CRC-32 (Go's hash/crc32 IEEE), independent of the processor's.
func crc32Of(id string, n int32) int32 { return int32(crc32.ChecksumIEEE([]byte(id)) % uint32(n)) }

// state runs "triggerd state SUB ID" against the admin API and returns the
// exit code and stdout.
func (r *partitionerRun) state(t *testing.T, sub, id string) (int, string) {
	t.Helper()
	cmd := exec.Command(r.bin, "state", sub, id, "--addr", "http://"+r.admin, "--token", r.token)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String() + errb.String()
}

// TestPythonDefaultPartitionerCRC32: Python confluent-kafka with its
// default partitioner (CRC32) writes 32 customers' profiles and carts;
// with kafka.partitioner crc32, every record is applied (no dead letter,
// every customer's cart reminder fires), "triggerd state get" finds every
// customer on the partition Python chose, and "triggerd state erase" of
// half of them leaves no key and no timer of theirs in any partition of
// the changelog (replayed from the topic into an empty store), while the
// others are still there. On the old code (murmur2 only) get answered
// found:false for about three customers in four, and the erase went to
// the murmur2 partition and left the record and timers live.
func TestPythonDefaultPartitionerCRC32(t *testing.T) {
	const n = 32
	r, ch, cfg := startPartitionerRun(t, "crc32", n)
	differ := 0
	for _, pr := range r.customers {
		if want := crc32Of(pr.Customer, r.parts); pr.Clickstream != want || pr.Profiles != want {
			t.Fatalf("librdkafka put %s on partitions %d/%d, CRC32 says %d: its default is not what the README says",
				pr.Customer, pr.Clickstream, pr.Profiles, want)
		}
		if harness.PartitionOf(pr.Customer, r.parts) != pr.Clickstream {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("CRC32 and murmur2 agree for every customer: the test would prove nothing")
	}
	got := harness.NewTriggerReader(t, r.c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(n, 3*time.Second, 2*time.Minute)
	fired := map[string]bool{}
	for _, tr := range got {
		fired[tr.Customer] = true
	}
	if len(fired) != n {
		t.Fatalf("cart reminders for %d of %d customers (log: %s)", len(fired), n, r.log)
	}
	if v, err := metricSum(ch.Ops, "triggerd_input_misrouted_total{"); err != nil || v != 0 {
		t.Fatalf("misrouted = %v (%v), want 0", v, err)
	}

	found := 0
	for _, pr := range r.customers {
		code, out := r.state(t, "get", pr.Customer)
		var v struct {
			Found     bool  `json:"found"`
			Partition int32 `json:"partition"`
		}
		if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &v); code != 0 || err != nil || !v.Found || v.Partition != pr.Clickstream {
			t.Errorf("state get %s: exit %d, %+v (err %v), want found on partition %d", pr.Customer, code, v, err, pr.Clickstream)
			continue
		}
		found++
	}

	erased := map[string]bool{}
	for i, pr := range r.customers {
		if i%2 == 1 {
			continue
		}
		if code, out := r.state(t, "erase", pr.Customer); code != 0 {
			t.Fatalf("state erase %s: exit %d: %s", pr.Customer, code, out)
		}
		erased[pr.Customer] = true
	}
	// The erased records on the trigger topic say each erase committed.
	done := map[string]bool{}
	reader := r.c.Client(t, kgo.ConsumeTopics(cfg.Topics.Triggers), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	deadline := time.Now().Add(2 * time.Minute)
	for len(done) < len(erased) && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := reader.PollFetches(ctx)
		cancel()
		for _, rec := range fs.Records() {
			for _, h := range rec.Headers {
				if h.Key == "kind" && string(h.Value) == string(schemas.KindErased) {
					done[string(rec.Key)] = true
					if want := crc32Of(string(rec.Key), r.parts); rec.Partition != want {
						t.Errorf("erased record of %s on trigger partition %d, want %d (CRC32)", rec.Key, rec.Partition, want)
					}
				}
			}
		}
	}
	if len(done) != len(erased) {
		t.Fatalf("erased records for %d of %d erases", len(done), len(erased))
	}

	replayed := (&scenario{t: t, c: r.c, cfg: cfg, parts: r.parts}).replayChangelog()
	defer replayed.Close()
	live, kept := 0, 0
	for _, pr := range r.customers {
		for p := int32(0); p < r.parts; p++ {
			cs, ok, err := replayed.ReadCustomer(p, schemas.CustomerID(pr.Customer))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case ok && erased[pr.Customer]:
				live++
				t.Errorf("erased %s is live in changelog partition %d: %d events, %d timers", pr.Customer, p, cs.Customer.Events, len(cs.Timers))
			case ok && p != pr.Clickstream:
				t.Errorf("%s has state in changelog partition %d, its records are on %d", pr.Customer, p, pr.Clickstream)
			case ok:
				kept++
				if len(cs.Timers) == 0 {
					t.Errorf("%s (not erased) has no pending timer (the stage-2 reminder)", pr.Customer)
				}
			}
		}
	}
	// The admin API reads the instance's local store, which applies a
	// cycle after its transaction commits: the erased record can be read
	// a moment before the local copy is gone. It must go soon after.
	var slowest time.Duration
	start := time.Now()
	for _, pr := range r.customers {
		if !erased[pr.Customer] {
			continue
		}
		for {
			code, out := r.state(t, "get", pr.Customer)
			if code != 0 && strings.Contains(out, `"found": false`) {
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatalf("state get %s still answers 30 s after its erased record: exit %d: %.300s", pr.Customer, code, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("python-crc32: customers=%d murmur2_differs=%d reminders=%d state_get_found=%d erased=%d live_after_erase=%d kept=%d state_get_gone_within=%s",
		n, differ, len(got), found, len(erased), live, kept, slowest.Round(time.Millisecond))
	if kept != n-len(erased) {
		t.Errorf("%d customers kept in the changelog, want %d", kept, n-len(erased))
	}
}

// TestPythonDefaultPartitionerMisrouted: the same producer against
// triggerd left at murmur2 (Java's default): every record Python put on
// another partition than murmur2's is dead-lettered as misrouted with
// both partitions in its headers and counted, and none is applied (those
// customers get no trigger); the records that happen to agree are
// processed as usual. On the old code every record was applied on the
// partition Python chose, out of reach of the admin API and the erase.
func TestPythonDefaultPartitionerMisrouted(t *testing.T) {
	const n = 32
	r, ch, cfg := startPartitionerRun(t, "murmur2", n)
	misrouted := map[string]bool{} // customer -> its records are misrouted
	wantDL := 0
	for _, pr := range r.customers {
		want := harness.PartitionOf(pr.Customer, r.parts)
		if pr.Clickstream != want {
			misrouted[pr.Customer] = true
			wantDL++
		}
		if pr.Profiles != want {
			wantDL++
		}
	}
	if len(misrouted) == 0 || len(misrouted) == n {
		t.Fatalf("%d of %d customers misrouted: the test needs both kinds", len(misrouted), n)
	}
	got := harness.NewTriggerReader(t, r.c, cfg.Topics.Triggers, schemas.FormatJSON, nil).Read(n-len(misrouted), 5*time.Second, 2*time.Minute)
	fired := map[string]bool{}
	for _, tr := range got {
		if misrouted[tr.Customer] {
			t.Errorf("misrouted customer %s got a %s trigger: its record was applied", tr.Customer, tr.Kind)
		}
		fired[tr.Customer] = true
	}
	if len(fired) != n-len(misrouted) {
		t.Errorf("triggers for %d customers, want the %d routed ones", len(fired), n-len(misrouted))
	}

	dl := r.c.Client(t, kgo.ConsumeTopics(cfg.Topics.DeadLetter), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var dead []*kgo.Record
	deadline := time.Now().Add(time.Minute)
	for len(dead) < wantDL && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := dl.PollFetches(ctx)
		cancel()
		dead = append(dead, fs.Records()...)
	}
	for _, rec := range dead {
		h := map[string]string{}
		for _, kv := range rec.Headers {
			h[kv.Key] = string(kv.Value)
		}
		want := fmt.Sprint(harness.PartitionOf(string(rec.Key), r.parts))
		if h["dlq_reason"] != "misrouted" || h["dlq_expected_partition"] != want || h["dlq_source_partition"] == want {
			t.Errorf("dead letter of %s: reason %q, expected partition %q (want %s), source %q", rec.Key, h["dlq_reason"],
				h["dlq_expected_partition"], want, h["dlq_source_partition"])
		}
	}
	counted, err := metricSum(ch.Ops, "triggerd_input_misrouted_total{")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("python-murmur2: customers=%d misrouted_customers=%d misrouted_records=%d dead_letters=%d counted=%v triggers=%d",
		n, len(misrouted), wantDL, len(dead), counted, len(got))
	if len(dead) != wantDL || counted != float64(wantDL) {
		t.Errorf("%d dead letters, counter %v; want %d misrouted records (log: %s)", len(dead), counted, wantDL, r.log)
	}
	logText, _ := os.ReadFile(r.log)
	if !strings.Contains(string(logText), "partitioner=murmur2_random") {
		t.Errorf("the log does not name the fix (partitioner=murmur2_random)")
	}
}
