package bench

import (
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/state"
)

// BenchmarkProfileDrain runs the processor in-process (exactly-once, the
// bench rules) over the workload backlog on kfake, so that the drain can be
// profiled. With BENCH_CPUPROFILE=file (and BENCH_MEMPROFILE=file) the
// profile covers the drain only, not the writing of the backlog; kfake runs
// in the same process, so look at the processor's share with
// -focus=triggerd or -ignore=kfake.
//
//	BENCH_CPUPROFILE=cpu.out go test -run='^$' -bench=ProfileDrain -benchtime=1x ./test/bench/
//	go tool pprof -top -ignore=kfake cpu.out
func BenchmarkProfileDrain(b *testing.B) {
	runtime.MemProfileRate = 64 << 10
	s := loadSettings(b)
	s.customers = envInt(b, "BENCH_CUSTOMERS", 100_000)
	s.events = envInt(b, "BENCH_EVENTS", 300_000)
	k := openCluster(b, "kfake")
	registry := srfake.New()
	b.Cleanup(registry.Close)
	reg, err := sr.NewClient(sr.URLs(registry.URL()))
	if err != nil {
		b.Fatal(err)
	}
	in := writeInputs(b, s, k, reg)

	mode := envString("BENCH_MODES", "exactly_once")
	cfg := processor.DefaultConfig()
	cfg.Brokers = k.brokers
	cfg.Guarantee = processor.Guarantee(mode)
	cfg.Group, cfg.InstanceID = in.prefix+"profile", "bench"
	cfg.Topics = in.topics
	cfg.Topics.Triggers, cfg.Topics.DeadLetter = in.prefix+"p-triggers", in.prefix+"p-dlq"
	cfg.Topics.Changelog, cfg.Topics.Suppressions = in.prefix+"p-changelog", in.prefix+"p-suppressions"
	cfg.Encodings = processor.Encodings{Clickstream: "avro", Transactions: "avro", Profiles: "avro", Triggers: "avro"}
	cfg.Registry.URL = registry.URL()
	cfg.ReplicationFactor = 1
	cfg.StartFrom = "earliest"
	cfg.Lateness = s.lateness
	rs, err := rules.Parse("bench", benchRules(b))
	if err != nil {
		b.Fatal(err)
	}
	sc := state.DefaultConfig()
	sc.Dir = b.TempDir()
	store, err := state.Open(sc, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	proc, err := processor.New(cfg, processor.Options{Logger: zap.NewNop(), Store: store, Rules: rs, Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if f := os.Getenv("BENCH_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- proc.Run(ctx) }()
	alive := func() error {
		select {
		case err := <-done:
			return errors.Join(errors.New("processor stopped"), err)
		default:
			return nil
		}
	}
	zero := func() time.Duration { return 0 }
	d := drain(b, k, cfg.Group, in.ends, zero, alive, 30*time.Minute)
	b.StopTimer()
	if f := os.Getenv("BENCH_MEMPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
			b.Fatal(err)
		}
		out.Close()
	}
	cancel()
	<-done
	b.ReportMetric(float64(d.events)/d.seconds, "events/s")
	logf("in-process %s on kfake: %d events in %.1fs (%.0f/s) after %.1fs", mode, d.events, d.seconds, float64(d.events)/d.seconds, time.Since(started).Seconds())
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
