package backtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
)

// Options are what a backtest replays, through which rules, and where it
// reports progress.
type Options struct {
	// Source is the production processor configuration: the cluster, the
	// input topics, their encodings and partitioner, the lateness. Only
	// its inputs are read.
	Source processor.Config
	// Baseline and Candidate are the rules compared (the baseline is
	// usually the rules in production).
	Baseline, Candidate *rules.Set
	// From and To bound the event time reported: [From, To). To must not
	// be after the wall clock.
	From, To time.Time
	// WarmUp is how much event time before From is replayed to rebuild
	// the state as of From; 0: everything retained.
	WarmUp time.Duration
	// StateDir is where the scratch state goes (a temporary directory is
	// made in it and removed); "": the system's temporary directory.
	StateDir string
	Log      *zap.Logger // nil: no log
	// Progress receives a line every ProgressEvery (default 5s) while
	// the backtest runs; nil: none.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Outcome is what one rules file produced in the replay, before the
// report's window is applied.
type Outcome struct {
	Triggers     []schemas.Trigger
	Suppressions []schemas.Suppression
	Cost         Cost
}

// Run replays the retained inputs through the baseline and then the
// candidate rules and compares them.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	if o.Baseline == nil || o.Candidate == nil {
		return nil, errors.New("backtest: a baseline and a candidate rules set are needed")
	}
	if !o.From.Before(o.To) {
		return nil, fmt.Errorf("backtest: --from %s is not before --to %s", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	if now := time.Now(); o.To.After(now) {
		return nil, fmt.Errorf("backtest: --to %s is in the future (the replay covers retained history only)", o.To.Format(time.RFC3339))
	}
	if o.WarmUp < 0 {
		return nil, fmt.Errorf("backtest: warm-up %s < 0", o.WarmUp)
	}
	var warmFrom time.Time
	if o.WarmUp > 0 {
		warmFrom = o.From.Add(-o.WarmUp)
	}
	started := time.Now()
	cpu0 := cpuTime()
	last := time.Now()
	s, err := seed(ctx, o.Source, warmFrom, o.To.Add(o.Source.Lateness), o.Log.Named("seed"), func(copied int64) {
		if o.Progress != nil && time.Since(last) >= o.ProgressEvery {
			last = time.Now()
			fmt.Fprintf(o.Progress, "backtest: copying the retained inputs: %d records\n", copied)
		}
	})
	if err != nil {
		return nil, err
	}
	defer s.close()
	copyCost := Cost{Events: s.records, WallSeconds: time.Since(started).Seconds(), CPUSeconds: (cpuTime() - cpu0).Seconds()}
	copyCost.rate()
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "backtest: copied %d records in %.1fs; replaying the baseline\n", s.records, copyCost.WallSeconds)
	}
	base, err := replay(ctx, o, s, "baseline", o.Baseline)
	if err != nil {
		return nil, err
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "backtest: baseline done (%.0f events/s); replaying the candidate\n", base.Cost.EventsPerSecond)
	}
	cand, err := replay(ctx, o, s, "candidate", o.Candidate)
	if err != nil {
		return nil, err
	}
	rep := Compare(o.From, o.To, base, cand)
	rep.Baseline.Rules, rep.Candidate.Rules = o.Baseline.Name(), o.Candidate.Name()
	rep.Replay = ReplayInfo{
		RecordsCopied: s.copied, Earliest: s.earliest, WarmUp: o.WarmUp.String(),
		Copy: copyCost, Total: Cost{Events: s.records, WallSeconds: time.Since(started).Seconds(), CPUSeconds: (cpuTime() - cpu0).Seconds()},
	}
	rep.Replay.Total.rate()
	return rep, nil
}

// replay runs the processor with rs over the scratch inputs until it has
// consumed every record, and reads back what it wrote.
func replay(ctx context.Context, o Options, s *scratch, side string, rs *rules.Set) (Outcome, error) {
	started, cpu0 := time.Now(), cpuTime()
	dir, err := os.MkdirTemp(o.StateDir, "triggerd-backtest-"+side+"-")
	if err != nil {
		return Outcome{}, fmt.Errorf("backtest: state directory: %w", err)
	}
	defer os.RemoveAll(dir)
	sc := state.DefaultConfig()
	sc.Dir = dir
	log := o.Log.Named(side)
	store, err := state.Open(sc, log.Named("state"))
	if err != nil {
		return Outcome{}, err
	}
	defer store.Close()
	cfg := sideConfig(o.Source, s, side)
	proc, err := processor.New(cfg, processor.Options{Logger: log, Store: store, Rules: rs, Registry: s.regClient})
	if err != nil {
		return Outcome{}, fmt.Errorf("backtest: %s: %w", side, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- proc.Run(runCtx) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastProgress := time.Now()
	for proc.Stats().Events < s.records {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("stopped before the replay was done")
			}
			return Outcome{}, fmt.Errorf("backtest: %s: %w", side, err)
		case <-ctx.Done():
			stop()
			<-done
			return Outcome{}, ctx.Err()
		case <-tick.C:
		}
		if o.Progress != nil && time.Since(lastProgress) >= o.ProgressEvery {
			lastProgress = time.Now()
			n := proc.Stats().Events
			fmt.Fprintf(o.Progress, "backtest: %s: %d of %d events (%.0f%%), %.0f events/s\n", side, n, s.records,
				100*float64(n)/float64(s.records), float64(n)/time.Since(started).Seconds())
		}
	}
	stats := proc.Stats()
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return Outcome{}, fmt.Errorf("backtest: %s: %w", side, err)
	}
	out := Outcome{Cost: Cost{Events: stats.Events, DeadLetters: stats.DeadLetters,
		WallSeconds: time.Since(started).Seconds(), CPUSeconds: (cpuTime() - cpu0).Seconds()}}
	out.Cost.rate()
	if out.Triggers, out.Suppressions, err = readOutputs(ctx, cfg); err != nil {
		return Outcome{}, fmt.Errorf("backtest: %s: %w", side, err)
	}
	return out, nil
}

// sideConfig is the processor configuration of one side's replay: the
// production inputs' names, encodings and partitioner on the scratch
// cluster, outputs of its own in JSON, read from the earliest record, with
// the inputs' progress taken from their event times alone (idle_advance
// off), so that the replay does not depend on the wall clock.
func sideConfig(src processor.Config, s *scratch, side string) processor.Config {
	cfg := src
	cfg.Brokers = s.cluster.ListenAddrs()
	cfg.TLS, cfg.SASL, cfg.Registry = processor.TLSConfig{}, processor.SASLConfig{}, processor.RegistryConfig{}
	if s.registry != nil {
		cfg.Registry.URL = s.registry.URL() // the scratch's, with the production schemas the copies use
	}
	cfg.Group = "triggerd-backtest-" + side
	cfg.InstanceID = "backtest-" + side
	cfg.Guarantee = processor.AtLeastOnce // no crash to survive; no transactions to pay for
	prefix := "triggerd.backtest." + side + "."
	cfg.Topics.Triggers = prefix + "triggers"
	cfg.Topics.Suppressions = prefix + "suppressions"
	cfg.Topics.DeadLetter = prefix + "dead-letter"
	cfg.Topics.Changelog = prefix + "changelog"
	cfg.Encodings.Triggers, cfg.Encodings.Suppressions = schemas.FormatJSON, schemas.FormatJSON
	cfg.CreateTopics, cfg.ReplicationFactor, cfg.TriggerPartitions = true, 1, 0
	cfg.StartFrom = "earliest"
	cfg.IdleAdvance = false
	// Timers fire in the cycle that reaches them, so the cycle that
	// consumes the last end marker leaves nothing due behind.
	cfg.TimersPerCycle = 1 << 30
	cfg.Tick = 20 * time.Millisecond
	if !s.earliest.IsZero() {
		if age := time.Since(s.earliest) + 24*time.Hour; age > cfg.MaxEventAge {
			cfg.MaxEventAge = age
		}
	}
	return cfg
}

// readOutputs reads every committed trigger and suppression on the
// cluster and topics of cfg (JSON).
func readOutputs(ctx context.Context, cfg processor.Config) ([]schemas.Trigger, []schemas.Suppression, error) {
	tdec, err := schemas.NewTriggerDecoder(schemas.FormatJSON, nil)
	if err != nil {
		return nil, nil, err
	}
	sdec, err := schemas.NewSuppressionDecoder(schemas.FormatJSON, nil)
	if err != nil {
		return nil, nil, err
	}
	var trigs []schemas.Trigger
	if err := readTopic(ctx, cfg.Brokers, cfg.Topics.Triggers, func(v []byte) error {
		var t schemas.Trigger
		if err := tdec.Decode(v, &t); err != nil {
			return err
		}
		trigs = append(trigs, t)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	var sups []schemas.Suppression
	err = readTopic(ctx, cfg.Brokers, cfg.SuppressionsTopic(), func(v []byte) error {
		var x schemas.Suppression
		if err := sdec.Decode(ctx, v, &x); err != nil {
			return err
		}
		sups = append(sups, x)
		return nil
	})
	return trigs, sups, err
}

// readTopic calls fn with the value of every committed record of topic on
// the cluster of brokers, up to its end offsets.
func readTopic(ctx context.Context, brokers []string, topic string, fn func([]byte) error) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("listing %s: %w", topic, err)
	}
	left := map[int32]int64{}
	consume := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
			consume[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(left) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer rd.Close()
	for len(left) > 0 {
		fetches := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return fmt.Errorf("reading %s: %w", topic, ferr)
		}
		var derr error
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if r.Attrs.IsControl() || derr != nil {
				return
			}
			if err := fn(r.Value); err != nil {
				derr = fmt.Errorf("%s[%d] offset %d: %w", topic, r.Partition, r.Offset, err)
			}
		})
		if derr != nil {
			return derr
		}
	}
	return nil
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
