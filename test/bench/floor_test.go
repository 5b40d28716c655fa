package bench

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/triggerd/triggerd/processor"
)

// buildFloor builds the Kafka floor (test/bench/kafkafloor).
func buildFloor(b *testing.B) string {
	return buildBinary(b, "kafkafloor", "", "github.com/triggerd/triggerd/test/bench/kafkafloor")
}

// runFloor runs the Kafka floor in mode over the backlog (its own group,
// from the oldest offset, its own compacted changelog) and measures it as
// the goka peer and triggerd are measured: what consuming the inputs and
// writing one changelog record per event costs with nothing else done.
func runFloor(b *testing.B, s settings, k *cluster, in inputs, bin, mode string) row {
	r := row{name: "kafka floor " + mode, floor: true}
	dir := workDir(b, "floor-"+mode)
	group := in.prefix + "floor-" + mode
	changelog := group + "-changelog"
	def := processor.DefaultConfig() // triggerd's settings in the benchmark
	adm := kadm.NewClient(k.client(b))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	compact := "compact"
	resp, err := adm.CreateTopics(ctx, s.partitions, 1, map[string]*string{"cleanup.policy": &compact}, changelog)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatalf("create the floor's changelog: %v", err)
	}
	p := startProc(b, filepath.Join(dir, "floor.log"), bin,
		"-brokers", strings.Join(k.brokers, ","), "-group", group, "-guarantee", mode,
		"-inputs", strings.Join([]string{in.topics.Clickstream, in.topics.Transactions, in.topics.Profiles}, ","),
		"-changelog", changelog, "-poll-records", strconv.Itoa(def.PollRecords),
		"-fetch-partition-bytes", strconv.Itoa(int(def.FetchPartitionBytes)))
	defer p.stop(b)
	waitCommitted(b, k, group, p.exited)
	d := drain(b, k, group, in.ends, p.cpu, p.exited, 30*time.Minute)
	r.events = d.events
	r.eventsPerSec = float64(d.events) / d.seconds
	r.cpuPerEvent = perEvent(d.cpu, d.events)
	r.peakRSS = p.peakRSS()
	r.note = "the inputs consumed (read_committed) and one changelog record written per event, its own key and bytes; " +
		map[string]string{"exactly_once": "a transaction per poll with the offsets", "at_least_once": "a flush, then the offsets, per poll"}[mode] +
		"; no decoding, state or rules: Kafka's part of a processor's cost"
	r.kafkaPerEvent, r.busy = d.machine.kafkaPerEvent(k, d.events), d.machine.busyShare()
	logf("%s kafka floor %s: drained %d events in %.1fs, %.0f events/s, %.1f µs CPU/event", k.name, mode, d.events, d.seconds, r.eventsPerSec, r.cpuPerEvent)
	logf("%s kafka floor %s drain: %s", k.name, mode, d.machine.split(k, "floor", d.events))
	return r
}
