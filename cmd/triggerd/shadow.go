package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/state"
)

// ShadowConfig runs a candidate rules file next to the production rules on
// the live traffic (shadow mode, docs/backtest.md): a second processor in
// the same process, with its own consumer group, changelog, state and
// output topics, so that a team can compare the candidate's triggers with
// production's for a few days before switching. It writes nothing to the
// production topics.
type ShadowConfig struct {
	// Rules is the candidate rules file; "" (the default): no shadow.
	Rules string `yaml:"rules"`
	// StateDir is the shadow's own Pebble state; "": <state.dir>/shadow
	// (on the same volume).
	StateDir string `yaml:"state_dir"`
}

// shadowSuffix is appended to the consumer group and to every topic the
// shadow writes: its triggers go to "<kafka.topics.triggers>.shadow".
const shadowSuffix = ".shadow"

// shadowMetricsPrefix is put before the names of the shadow's metrics
// (shadow_triggerd_output_triggers_total), so that no dashboard or alert
// written for production's series counts the shadow's with them.
const shadowMetricsPrefix = "shadow_"

func (s ShadowConfig) check(ps *problems, stateDir string) {
	if s.Rules == "" {
		return
	}
	if _, err := rules.Load(s.Rules); err != nil {
		ps.addErr("shadow.rules", err)
	}
	if s.StateDir != "" && filepath.Clean(s.StateDir) == filepath.Clean(stateDir) {
		ps.add("shadow.state_dir", "%q is state.dir: the shadow needs a state of its own", s.StateDir)
	}
}

// stateDir is where the shadow keeps its state.
func (s ShadowConfig) stateDir(main string) string {
	if s.StateDir != "" {
		return s.StateDir
	}
	return filepath.Join(main, "shadow")
}

// shadowKafka is the processor configuration of the shadow: the
// production inputs, read by a consumer group of its own (so it gets every
// record too, and its offsets are its own), and every output renamed with
// the shadow suffix: triggers, suppressions, dead letters and changelog.
// Its transactional ID, "<group>-<instance>", differs from production's
// by the group's name.
func shadowKafka(k processor.Config) processor.Config {
	s := k
	s.Group = k.Group + "-shadow"
	s.Topics.Triggers = k.Topics.Triggers + shadowSuffix
	s.Topics.Suppressions = k.SuppressionsTopic() + shadowSuffix
	s.Topics.DeadLetter = k.Topics.DeadLetter + shadowSuffix
	s.Topics.Changelog = k.Topics.Changelog + shadowSuffix
	return s
}

// shadow is the candidate's pipeline inside a running instance.
type shadow struct {
	proc  *processor.Processor
	store *state.Store
	rules RulesConfig // the candidate file, reloaded as the production rules are
	log   *zap.Logger
	up    prometheus.Gauge
	wg    sync.WaitGroup
}

// newShadow opens the shadow's state and makes its processor, with its
// metrics on reg under the shadow prefix.
func newShadow(cfg Config, log *zap.Logger, reg prometheus.Registerer, registry *sr.Client) (*shadow, error) {
	rs, err := rules.Load(cfg.Shadow.Rules)
	if err != nil {
		return nil, fmt.Errorf("shadow.rules: %w", err)
	}
	log = log.Named("shadow")
	sc := cfg.stateConfig()
	sc.Dir = cfg.Shadow.stateDir(cfg.State.Dir)
	store, err := state.Open(sc, log.Named("state"))
	if err != nil {
		return nil, fmt.Errorf("shadow state (shadow.state_dir): %w", err)
	}
	proc, err := processor.New(shadowKafka(cfg.Kafka), processor.Options{
		Logger: log, Registerer: prometheus.WrapRegistererWithPrefix(shadowMetricsPrefix, reg), Store: store, Rules: rs,
		Registry: registry,
	})
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("shadow: %w", err)
	}
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "triggerd_shadow_up",
		Help: "1 while the shadow pipeline (shadow.rules) runs; 0 once it stopped on an error (see the log). Production is not affected either way.",
	})
	reg.MustRegister(up)
	return &shadow{proc: proc, store: store, rules: RulesConfig{File: cfg.Shadow.Rules, Poll: cfg.Rules.Poll}, log: log, up: up}, nil
}

// start runs the shadow until ctx is done or it fails. A failure is
// logged and shown in triggerd_shadow_up; it never stops production, and
// production's readiness does not depend on the shadow.
func (s *shadow) start(ctx context.Context) {
	s.up.Set(1)
	logRules(s.log, "shadow rules loaded; writing to the shadow topics", s.proc.Rules())
	s.wg.Go(func() { watchRules(ctx, s.rules, s.log, s.proc.SetRules, s.proc.RulesRejected) })
	s.wg.Go(func() {
		err := s.proc.Run(ctx)
		if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			s.up.Set(0)
			s.log.Error("the shadow pipeline stopped; production runs on without it (restart the process to restart the shadow)", zap.Error(err))
			return
		}
		s.up.Set(0)
	})
}

// close waits for the shadow to stop (its context done) and closes its
// state.
func (s *shadow) close() {
	s.wg.Wait()
	if err := s.store.Close(); err != nil {
		s.log.Error("closing the shadow state", zap.Error(err))
	}
}
