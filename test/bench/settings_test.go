package bench

import (
	"github.com/triggerd/triggerd/processor"

	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// settings are the benchmark's sizes, from the environment (make bench and
// make bench-quick set them; the defaults are the sizes where this
// 2-core machine can hold them).
type settings struct {
	clusters   []string // BENCH_CLUSTERS: real,kfake
	modes      []string // BENCH_MODES: exactly_once,at_least_once
	partitions int32    // BENCH_PARTITIONS
	customers  int      // BENCH_CUSTOMERS: customers the workload draws from
	events     int      // BENCH_EVENTS: backlog drained for events/s and CPU
	// span is the event time the backlog covers (BENCH_SPAN, up to now).
	// With 90 min and the 1 h cart delay, the backlog's cart timers fall
	// due from 30 min before its end to 1 h after: some fire while it is
	// drained, the rest during the live phase, where their fire lag is
	// measured.
	span           time.Duration
	stateCustomers int // BENCH_STATE_CUSTOMERS: customers (one pending timer each) seeded into the changelog
	// kfakeStateCustomers (BENCH_KFAKE_STATE_CUSTOMERS, default the
	// smaller of 2,000,000 and stateCustomers) replaces it on kfake, which
	// keeps every record in the benchmark's own memory.
	kfakeStateCustomers int
	live                time.Duration
	// liveRate (BENCH_LIVE_RATE, events/s): the live phase's rate, fixed
	// so that two builds can be compared at the same load; 0 (the default)
	// is half the end-to-end maximum this run measured.
	liveRate float64
	saturate time.Duration // BENCH_SATURATE: the end-to-end maximum rate phase
	warmup   time.Duration
	lateness time.Duration
	// idleGrace (BENCH_IDLE_GRACE): the processor's kafka.idle_grace,
	// default its default; 0 to weigh what the grace costs in latency.
	idleGrace time.Duration
	goka      bool // BENCH_GOKA: run the peer
	// ours (BENCH_OURS=0 leaves out triggerd's runs, raw ones included):
	// with BENCH_KSTREAMS=0 and BENCH_FLOOR=0, only the goka peer runs.
	ours bool
	// floor (BENCH_FLOOR): run the Kafka floor (test/bench/kafkafloor)
	// in each mode: the inputs consumed and one changelog record written
	// per event, nothing else.
	floor bool
	// settle (BENCH_SETTLE=1): restore with a processor on empty inputs
	// and let Pebble compact what the restore wrote before the drain (see
	// restoreAndSettle); by default the drain starts right after the
	// restore and pays for those compactions.
	settle bool
	// compression (BENCH_COMPRESSION): the processor's produce codec
	// (kafka.compression), default snappy.
	compression string
	// writeBack (BENCH_WRITE_BACK_COMMITS): the processor's
	// state.write_back_commits, 0 for its default; 1 writes every cycle's
	// customer records to Pebble (write-through), to compare.
	writeBack int
	// cachedCustomers (BENCH_CACHED_CUSTOMERS): the processor's
	// state.cached_customers, 0 for its default.
	cachedCustomers int
	// pprofDir (BENCH_PPROF): write CPU profiles of the processor's
	// drain (its first BENCH_PPROF_SECONDS) and live phase there, as
	// <cluster>-<mode>-drain.pprof and -live.pprof.
	pprofDir  string
	pprofSecs time.Duration
}

func loadSettings(b *testing.B) settings {
	s := settings{
		clusters:        []string{"real", "kfake"},
		modes:           []string{"exactly_once", "at_least_once"},
		partitions:      int32(envInt(b, "BENCH_PARTITIONS", 12)),
		customers:       envInt(b, "BENCH_CUSTOMERS", 1_000_000),
		events:          envInt(b, "BENCH_EVENTS", 2_000_000),
		span:            envDuration(b, "BENCH_SPAN", 90*time.Minute),
		stateCustomers:  envInt(b, "BENCH_STATE_CUSTOMERS", 1_000_000),
		live:            envDuration(b, "BENCH_LIVE", 30*time.Second),
		liveRate:        float64(envInt(b, "BENCH_LIVE_RATE", 0)),
		saturate:        envDuration(b, "BENCH_SATURATE", 15*time.Second),
		warmup:          envDuration(b, "BENCH_WARMUP", 5*time.Second),
		lateness:        envDuration(b, "BENCH_LATENESS", 100*time.Millisecond),
		idleGrace:       envDuration(b, "BENCH_IDLE_GRACE", processor.DefaultConfig().IdleGrace),
		goka:            envInt(b, "BENCH_GOKA", 1) == 1,
		ours:            envInt(b, "BENCH_OURS", 1) == 1,
		floor:           envInt(b, "BENCH_FLOOR", 1) == 1,
		settle:          envInt(b, "BENCH_SETTLE", 0) == 1,
		pprofDir:        os.Getenv("BENCH_PPROF"),
		compression:     "snappy",
		writeBack:       envInt(b, "BENCH_WRITE_BACK_COMMITS", 0),
		cachedCustomers: envInt(b, "BENCH_CACHED_CUSTOMERS", 0),
		pprofSecs:       envDuration(b, "BENCH_PPROF_SECONDS", 10*time.Second),
	}
	s.kfakeStateCustomers = envInt(b, "BENCH_KFAKE_STATE_CUSTOMERS", min(2_000_000, s.stateCustomers))
	if v := os.Getenv("BENCH_CLUSTERS"); v != "" {
		s.clusters = strings.Split(v, ",")
	}
	if v := os.Getenv("BENCH_COMPRESSION"); v != "" {
		s.compression = v
	}
	if v := os.Getenv("BENCH_MODES"); v != "" {
		s.modes = strings.Split(v, ",")
	}
	return s
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil {
		b.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		b.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

func numCPU() int { return runtime.NumCPU() }

// logf prints a progress or diagnostic line at once, on stdout, with the
// time. Not b.Logf: the testing package prints a benchmark's log only at its
// end and keeps only its last ten lines, and a full run takes half an hour.
func logf(format string, args ...any) {
	fmt.Printf("    %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
