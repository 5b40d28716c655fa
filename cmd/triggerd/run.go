package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/processor/admin"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/state"
)

const runUsage = `Usage:
  triggerd run [--config FILE] [--shadow-rules CANDIDATE.yaml]

Processes events from a Kafka cluster until SIGTERM or SIGINT. Every setting
is checked first, and every problem is reported at once, each named by its
path in the file. Every setting can be overridden with TRIGGERD_<PATH> (see
deploy/config.example.yaml); a TRIGGERD_ variable that names no setting
stops the start.

--shadow-rules (the setting shadow.rules) also runs a candidate rules file
on the same live traffic, in a pipeline of its own whose triggers,
suppressions, dead letters and changelog go to "<topic>.shadow" topics and
whose metrics are named shadow_triggerd_*: nothing it decides reaches the
production topics, and its failure does not stop production.
`

func runCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "", "the configuration `FILE` (YAML; default: $TRIGGERD_CONFIG, else the defaults)")
	shadowRules := fs.String("shadow-rules", "", "run the candidate rules `FILE` in shadow mode next to production (overrides shadow.rules)")
	if err := parseFlags(fs, runUsage, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, runUsage, "run: no arguments expected, got %q (the file goes after --config)", fs.Args())
	}
	if *path == "" {
		*path = os.Getenv("TRIGGERD_CONFIG")
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err == nil && *shadowRules != "" {
		cfg.Shadow.Rules = *shadowRules
		err = cfg.validate()
	}
	if err != nil {
		where := "(defaults and TRIGGERD_ variables)"
		if *path != "" {
			where = "in " + *path
		}
		return fmt.Errorf("invalid configuration %s:\n%w", where, err)
	}
	log, err := newLogger(cfg.Log.Level)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	return run(ctx, cfg, log)
}

// run wires the processor from cfg and runs it until ctx is done.
func run(ctx context.Context, cfg Config, log *zap.Logger) error {
	var registry *sr.Client
	if cfg.Kafka.UsesAvro() {
		opts := []sr.ClientOpt{sr.URLs(cfg.Kafka.Registry.URL)}
		if cfg.Kafka.Registry.User != "" {
			opts = append(opts, sr.BasicAuth(cfg.Kafka.Registry.User, cfg.Kafka.Registry.Password))
		}
		var err error
		if registry, err = sr.NewClient(opts...); err != nil {
			return fmt.Errorf("schema registry: %w", err)
		}
	}
	return runWired(ctx, cfg, log, registry, wiringHooks{})
}

// wiringHooks let the demo and the tests see what runWired wires; each
// one, if set, is called before the processors run, Metrics first.
type wiringHooks struct {
	Production func(*processor.Processor)
	Shadow     func(*processor.Processor) // only with shadow.rules
	Metrics    func(prometheus.Gatherer)
}

// runWired runs the processor (and the shadow, if shadow.rules is set) with
// a schema registry client (nil when no encoding is avro).
func runWired(ctx context.Context, cfg Config, log *zap.Logger, registry *sr.Client, hooks wiringHooks) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store, err := state.Open(cfg.stateConfig(), log.Named("state"))
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing state", zap.Error(err))
		}
	}()
	rs, err := cfg.Rules.load()
	if err != nil {
		return err
	}
	fp, err := failpointsFromEnv(os.Getenv(failpointsEnv))
	if err != nil {
		return err
	}
	proc, err := processor.New(cfg.Kafka, processor.Options{
		Logger: log, Registerer: reg, Store: store, Rules: rs, Registry: registry, Failpoint: fp,
		Trace: os.Getenv(traceEnv), AdminAddress: cfg.Admin.advertised(),
	})
	if err != nil {
		return err
	}
	if cfg.Admin.Addr != "" {
		api, err := admin.New(proc, store, admin.Config{Token: cfg.Admin.Token, AllowWrites: cfg.Admin.AllowWrites}, log.Named("admin"))
		if err != nil {
			return err
		}
		srv := api.NewHTTPServer(cfg.Admin.Addr)
		ln, err := net.Listen("tcp", cfg.Admin.Addr)
		if err != nil {
			return fmt.Errorf("admin API (admin.addr): %w", err)
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin server", zap.Error(err))
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("admin API listening", zap.String("addr", cfg.Admin.Addr), zap.String("advertise", cfg.Admin.advertised()),
			zap.Bool("allow_writes", cfg.Admin.AllowWrites))
	}
	if cfg.Ops.Addr != "" {
		srv := proc.NewOpsServer(cfg.Ops.Addr, reg)
		if cfg.Ops.Pprof {
			srv.Handler = withPprof(srv.Handler)
		}
		// Listened on before the processor starts: a port taken
		// stops the start, rather than the process running without
		// /metrics and the probes.
		ln, err := net.Listen("tcp", cfg.Ops.Addr)
		if err != nil {
			return fmt.Errorf("ops endpoint (ops.addr): %w", err)
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("ops server", zap.Error(err))
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("ops endpoint listening", zap.String("addr", ln.Addr().String()))
	}
	var sh *shadow
	if cfg.Shadow.Rules != "" {
		if sh, err = newShadow(cfg, log, reg, registry); err != nil {
			return err
		}
	}
	if hooks.Metrics != nil {
		hooks.Metrics(reg)
	}
	if hooks.Production != nil {
		hooks.Production(proc)
	}
	if hooks.Shadow != nil && sh != nil {
		hooks.Shadow(sh.proc)
	}
	logRules(log, "rules loaded", rs)
	go watchRules(ctx, cfg.Rules, log, proc.SetRules, proc.RulesRejected)
	if sh == nil {
		return proc.Run(ctx)
	}
	// The shadow stops with production, whichever way production stops,
	// and its state is closed once it has.
	shadowCtx, stopShadow := context.WithCancel(ctx)
	sh.start(shadowCtx)
	defer sh.close()
	defer stopShadow()
	return proc.Run(ctx)
}

// watchRules reloads the rules file on SIGHUP and, when cfg.Poll > 0, when
// its modification time changes and its content with it: a file rewritten
// with what it held, or whose time alone was set (a deploy that writes the
// file, then sets its time), is not compiled and announced again. SIGHUP
// always reloads. A file that does not compile is logged with every error,
// reported to rejected, and the running rules stay in force. The example
// rules built into the binary (no file configured) never change.
func watchRules(ctx context.Context, cfg RulesConfig, log *zap.Logger, set func(*rules.Set), rejected func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var poll <-chan time.Time
	if cfg.Poll > 0 && cfg.File != "" {
		t := time.NewTicker(cfg.Poll)
		defer t.Stop()
		poll = t.C
	}
	mtime := func() time.Time {
		if cfg.File == "" {
			return time.Time{}
		}
		fi, err := os.Stat(cfg.File)
		if err != nil {
			return time.Time{}
		}
		return fi.ModTime()
	}
	last := mtime()
	// seen is the content last compiled, loaded or rejected; nil when
	// unknown (no file, or it could not be read).
	var seen []byte
	if cfg.File != "" {
		seen, _ = os.ReadFile(cfg.File)
	}
	reload := func(why string) {
		var rs *rules.Set
		var err error
		if cfg.File == "" {
			rs, err = cfg.load()
		} else if data, rerr := os.ReadFile(cfg.File); rerr != nil {
			err = fmt.Errorf("rules: %w", rerr)
		} else {
			// Compiled from the bytes remembered, so that a change
			// made after this read is seen as one.
			seen = data
			rs, err = rules.Parse(cfg.File, data)
		}
		if err != nil {
			var le *rules.LoadError
			if errors.As(err, &le) {
				for _, pe := range le.Errs {
					log.Error("rules file rejected; the running rules stay in force", zap.String("reason", why), zap.String("error", pe.Error()))
				}
			} else {
				log.Error("rules file rejected; the running rules stay in force", zap.String("reason", why), zap.Error(err))
			}
			rejected()
			return
		}
		set(rs)
		logRules(log, "rules reloaded ("+why+")", rs)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last = mtime()
			reload("SIGHUP")
		case <-poll:
			if m := mtime(); !m.Equal(last) {
				last = m
				if data, err := os.ReadFile(cfg.File); err == nil && seen != nil && bytes.Equal(data, seen) {
					continue
				}
				reload("file changed")
			}
		}
	}
}

func logRules(log *zap.Logger, msg string, rs *rules.Set) {
	ids := make([]string, 0, len(rs.Rules()))
	for _, r := range rs.Rules() {
		ids = append(ids, fmt.Sprintf("%s@v%d", r.ID, r.Version))
	}
	log.Info(msg, zap.String("file", rs.Name()), zap.Int("rules", len(ids)), zap.Strings("rule_versions", ids))
}

// failpointsEnv names the test-only variable that makes the process kill
// itself inside the commit cycle: "after-end=0.05,mid-apply=0.05" kills
// with SIGKILL at each named phase with that probability. Crash tests use it
// to hit the commit window, which external kills rarely do.
const failpointsEnv = "TRIGGERD_TEST_FAILPOINTS"

// traceEnv names the test-only variable with a customer ID prefix to trace
// (processor.Options.Trace).
const traceEnv = "TRIGGERD_TEST_TRACE"

func failpointsFromEnv(spec string) (func(string), error) {
	if spec == "" {
		return nil, nil
	}
	probs := map[string]float64{}
	for _, kv := range strings.Split(spec, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		p, err := strconv.ParseFloat(val, 64)
		if !ok || err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("%s: %q is not phase=probability", failpointsEnv, kv)
		}
		probs[name] = p
	}
	return func(phase string) {
		if p := probs[phase]; p > 0 && rand.Float64() < p {
			// The line tells the test which phase the kill hit.
			fmt.Fprintf(os.Stderr, "failpoint: kill at %s\n", phase)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}, nil
}
