package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// buildPeer builds the goka peer (test/peer/goka, its own module) into a
// temporary directory.
func buildPeer(b *testing.B) string {
	src, err := filepath.Abs("../peer/goka")
	if err != nil {
		b.Fatal(err)
	}
	return buildBinary(b, "goka-peer", src, ".")
}

// buildBinary builds the main package pkg, in the module at dir ("" for
// this one), into a temporary directory as name, without cgo as triggerd
// is built (harness.BuildTriggerd): every process measured runs the same
// kind of binary.
func buildBinary(b *testing.B, name, dir, pkg string) string {
	bin := filepath.Join(b.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("build %s: %v", name, err)
	}
	return bin
}

// runPeer runs the goka peer over the same backlog (its own group, from the
// oldest offset) and measures its drain rate, CPU and peak RSS the same way
// as triggerd's. Once drained, it waits for the peer's triggers to settle
// (its delayer fires checks after the offsets are committed) and fails
// unless they are the checker's (cartCheck), which it returns for the
// other peers.
func runPeer(b *testing.B, s settings, k *cluster, registryURL string, in inputs, bin string) (row, cartResult) {
	r := row{name: "goka"}
	dir := workDir(b, "goka")
	group := in.prefix + "goka"
	delay, checks, triggers := in.prefix+"goka-delay", in.prefix+"goka-checks", in.prefix+"goka-triggers"
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The streams the peer writes and reads besides the inputs,
	// co-partitioned with them (goka requires it of the checks input).
	resp, err := adm.CreateTopics(ctx, s.partitions, 1, nil, delay, checks, triggers)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatalf("create the peer's topics: %v", err)
	}
	args := []string{"-brokers", strings.Join(k.brokers, ","), "-group", group,
		"-clickstream", in.topics.Clickstream, "-transactions", in.topics.Transactions, "-profiles", in.topics.Profiles,
		"-triggers", triggers, "-delay", delay, "-checks", checks, "-registry", registryURL,
		"-dir", filepath.Join(dir, "state")}
	if s.pprofDir != "" {
		// The whole run's profile, written when the peer stops.
		args = append(args, "-cpuprofile", filepath.Join(s.pprofDir, k.name+"-goka.pprof"))
	}
	p := startProc(b, filepath.Join(dir, "goka.log"), bin, args...)
	defer p.stop(b)
	// goka has no restore to wait for on a fresh group: the first sample
	// is taken once its consumer group has committed something.
	waitCommitted(b, k, group, p.exited)
	d := drain(b, k, group, in.ends, p.cpu, p.exited, 60*time.Minute)
	r.events = d.events
	r.eventsPerSec = float64(d.events) / d.seconds
	r.cpuPerEvent = float64(d.cpu.Microseconds()) / float64(max(d.events, 1))
	r.peakRSS = p.peakRSS()
	r.note = "at-least-once (sarama consumer group, 1 s offset commits), no contact policy, no other rules; " +
		"timers: delay stream + in-memory heap + emitter, released by a per-partition event-time watermark; " +
		"cart changes applied in event-time order (in-memory buffer ahead of the watermark); Kafka's murmur2 for its emits"
	logf("%s goka: drained %d events in %.1fs, %.0f events/s, %.1f µs CPU/event, peak RSS %.0f MiB", k.name, d.events, d.seconds, r.eventsPerSec, r.cpuPerEvent, float64(r.peakRSS)/(1<<20))
	r.kafkaPerEvent, r.busy = d.machine.kafkaPerEvent(k, d.events), d.machine.busyShare()
	logf("%s goka drain: %s", k.name, d.machine.split(k, "goka", d.events))

	check := cartCheck(b, k, registryURL, in)
	logf("%s cart check: %d cart_abandoned triggers due by %s (the backlog's checker)", k.name, len(check.want), check.cutoff.Format(time.RFC3339))
	waitSettled(b, k, triggers, p.exited)
	got := readTriggers(b, k, triggers, false)
	verdict := check.compare(got)
	logf("%s goka triggers against the checker: %s", k.name, verdict)
	logf("%s goka work: %s", k.name, lastCounts(p.logPath))
	if !check.matches(got) {
		b.Fatalf("goka peer emitted other triggers than the checker: %s (log %s)", verdict, p.logPath)
	}
	r.triggers = float64(len(got.due))
	r.note += fmt.Sprintf("; triggers = the checker's (%d due by the cutoff)", len(check.want))
	return r, check
}

// gokaSettle is how long the goka peer's triggers topic must stay the same
// to count as settled: well beyond the peer's end-offset polls (200 ms),
// its delayer's ticks (100 ms) and a check's way back through Kafka.
const gokaSettle = 5 * time.Second

// waitSettled waits, after the drain, until topic's end offsets have not
// moved for gokaSettle (bounded by 3 minutes): the peer's delayer releases
// checks after its offsets are committed.
func waitSettled(b *testing.B, k *cluster, topic string, alive func() error) {
	began := time.Now()
	var last int64 = -1
	stable := time.Now()
	for time.Since(began) < 3*time.Minute {
		if err := alive(); err != nil {
			b.Fatalf("peer died: %v", err)
		}
		var n int64
		endOffsets(b, k, topic).Each(func(o kadm.ListedOffset) { n += o.Offset })
		if n != last {
			last, stable = n, time.Now()
		} else if time.Since(stable) >= gokaSettle {
			logf("%s goka: %d triggers, settled %s after the drain", k.name, n, time.Since(began).Round(time.Millisecond))
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.Fatalf("the goka peer's triggers (%s) still grew 3 minutes after the drain", topic)
}

// waitCommitted waits until group has committed an offset.
func waitCommitted(b *testing.B, k *cluster, group string, alive func() error) {
	adm := kadm.NewClient(k.client(b))
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if err := alive(); err != nil {
			b.Fatalf("peer died: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		committed, err := adm.FetchOffsets(ctx, group)
		cancel()
		if err == nil && len(committed) > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("peer group %s committed nothing within 5 minutes", group)
}

// lastCounts returns the last line of the peer's log that reports its
// work counts (events, checks through the delay loop, triggers).
func lastCounts(logPath string) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return err.Error()
	}
	last := "no counts logged"
	for line := range strings.Lines(string(data)) {
		if _, c, ok := strings.Cut(line, "goka peer: events="); ok {
			last = "events=" + strings.TrimSpace(c)
		}
	}
	return last
}
