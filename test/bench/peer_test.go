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
// as triggerd's.
func runPeer(b *testing.B, s settings, k *cluster, registryURL string, in inputs, bin string) row {
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
	p := startProc(b, filepath.Join(dir, "goka.log"), bin,
		"-brokers", strings.Join(k.brokers, ","), "-group", group,
		"-clickstream", in.topics.Clickstream, "-transactions", in.topics.Transactions, "-profiles", in.topics.Profiles,
		"-triggers", triggers, "-delay", delay, "-checks", checks, "-registry", registryURL,
		"-dir", filepath.Join(dir, "state"))
	defer p.stop(b)
	// goka has no restore to wait for on a fresh group: the first sample
	// is taken once its consumer group has committed something.
	waitCommitted(b, k, group, p.exited)
	d := drain(b, k, group, in.ends, p.cpu, p.exited, 60*time.Minute)
	r.events = d.events
	r.eventsPerSec = float64(d.events) / d.seconds
	r.cpuPerEvent = float64(d.cpu.Microseconds()) / float64(max(d.events, 1))
	r.peakRSS = p.peakRSS()
	r.note = fmt.Sprintf("at-least-once (sarama consumer group, 1 s offset commits), no contact policy, no other rules; timers: delay stream + in-memory heap + ticker emitter")
	logf("%s goka: drained %d events in %.1fs, %.0f events/s, %.1f µs CPU/event", k.name, d.events, d.seconds, r.eventsPerSec, r.cpuPerEvent)
	r.kafkaPerEvent, r.busy = d.machine.kafkaPerEvent(k, d.events), d.machine.busyShare()
	logf("%s goka drain: %s", k.name, d.machine.split(k, "goka", d.events))
	return r
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
