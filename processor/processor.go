package processor

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
)

// Options are the processor's dependencies.
type Options struct {
	Logger     *zap.Logger           // required
	Registerer prometheus.Registerer // nil: no metrics registered
	Clock      func() time.Time      // nil: time.Now
	Store      *state.Store          // required
	Rules      *rules.Set            // required
	Registry   *sr.Client            // required when an encoding is avro
	// Failpoint, if set, is called at the named points of the commit
	// cycle ("before-end", "after-end", "mid-apply", "after-apply"). Crash
	// tests use it to kill the process inside the commit window.
	Failpoint func(phase string)
	// Trace, if set, is a customer ID prefix whose events and timers are
	// logged at info level, with a check of the consumer positions before
	// each End. For diagnosing tests; never set in production.
	Trace string
	// AdminAddress, if set, is the address (a URL) other instances and
	// clients reach this instance's admin API at. It is advertised in the
	// group member metadata, so that any instance can redirect a request
	// for a customer to the instance that owns it (owner.go).
	AdminAddress string
}

// Processor runs the pipeline. Create it with New, run it with Run.
//
// Who touches what (the lock discipline):
//   - Fields set by New are read-only afterwards. Those the session sets
//     (cl, adm, nparts, the guarantee's session) change only in Run's loop,
//     between cycles, and the admin API does not read them.
//   - The loop's own fields (workers, lastCaughtUpCheck) are touched by the
//     loop alone: the workers' goroutines run only inside a cycle, while
//     the loop waits for them (worker.go).
//   - A field another goroutine reads or writes (a rebalance callback, the
//     admin API, /metrics, a produce promise) is an atomic, or it sits in a
//     struct named for what it holds that embeds the sync.Mutex guarding
//     it (assignment, serving, admin), as Pebble does. A helper that must
//     be called with such a lock held ends in Locked. No code path holds
//     two of these locks at once, so they have no order.
type Processor struct {
	cfg   Config
	log   *zap.Logger
	clock func() time.Time
	store *state.Store
	rules atomic.Pointer[rules.Set] // replaced by SetRules while running
	m     *metrics
	kprom *kprom.Metrics

	sources  []schemas.Source
	decoders []*schemas.Decoder
	registry *sr.Client
	g        guarantee // exactly-once or at-least-once (guarantee.go)
	out      *output   // where the cycle's records go (output.go)
	env      workerEnv // what the workers use of the processor

	cl      *kgo.Client // the session's client
	adm     *kadm.Client
	nparts  int32
	workers map[int32]*worker

	// assignment is written by the group's rebalance callbacks and read
	// by the loop after each poll (assignment.go).
	assignment struct {
		sync.Mutex
		parts map[int32]map[string]bool // partition number -> the input topics assigned with it
		err   error
	}

	failpoint func(string)
	trace     string // customer ID prefix to trace at info level (tests only)
	// lastCaughtUpCheck is when the inputs' end offsets were last
	// listed (caughtup.go).
	lastCaughtUpCheck time.Time
	stats             Stats
	ready             atomic.Bool
	lastCycle         atomic.Int64 // unix nanos of the last completed cycle
	// commitCount counts committed transactions, so that Run can tell a
	// session that worked for a while from one that never did.
	commitCount atomic.Int64
	// faults records what keeps the processor out of its group, and the
	// fault it stops on (faults.go); it has its own lock.
	faults faults

	// For the admin API (owner.go), read from its goroutines.
	adminAddr  string
	partitions atomic.Int32 // the input partition count, once known
	serving    struct {
		sync.Mutex
		parts map[int32]bool // partitions with a restored worker
	}
	admin struct {
		sync.Mutex
		side    *side // the admin's Kafka client, while running
		running bool
	}

	misroutes misrouteLog // partitioner_misrouted.go; has its own lock
}

// Stats are running totals for the demo and tests. Counters only include
// committed cycles.
type Stats struct {
	events      atomic.Int64
	deadLetters atomic.Int64
	triggers    atomic.Int64
	pending     atomic.Int64
	erasures    atomic.Int64
	mu          sync.Mutex // guards byKind
	byKind      map[string]int64
}

// StatsSnapshot is a copy of Stats.
type StatsSnapshot struct {
	Events, DeadLetters, Triggers, PendingTimers int64
	Erasures                                     int64 // customers erased (not in Triggers)
	TriggersByKind                               map[string]int64
}

// New checks cfg and the dependencies. It does not connect to Kafka.
func New(cfg Config, o Options) (*Processor, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Logger == nil {
		errs = append(errs, errors.New("processor: no logger"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("processor: no state store"))
	}
	if o.Rules == nil {
		errs = append(errs, errors.New("processor: no rules"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Failpoint == nil {
		o.Failpoint = func(string) {}
	}
	p := &Processor{
		cfg: cfg, log: o.Logger, clock: o.Clock, store: o.Store, failpoint: o.Failpoint,
		m: newMetrics(o.Registerer), registry: o.Registry, workers: map[int32]*worker{},
	}
	if o.Registerer != nil && o.Store != nil {
		o.Registerer.MustRegister(storeCollector{o.Store})
	}
	p.m.initInputs(cfg.Inputs())
	p.trace = o.Trace
	p.initMisrouted()
	p.adminAddr = o.AdminAddress
	p.rules.Store(o.Rules)
	p.kprom = kprom.NewMetrics("triggerd", kprom.Registerer(registererOrNew(o.Registerer)))
	p.stats.byKind = map[string]int64{}
	p.g = newGuarantee(p)
	p.out = &output{log: p.log, cfg: &p.cfg}
	p.env = workerEnv{cfg: &p.cfg, m: p.m, stats: &p.stats, out: p.out, g: p.g, ruleSet: p.Rules, clock: p.clock,
		trace: p.trace, partitions: &p.partitions, misroutes: &p.misroutes}
	p.sources = InputSources()
	formats := []schemas.Format{cfg.Encodings.Clickstream, cfg.Encodings.Transactions, cfg.Encodings.Profiles}
	for i, src := range p.sources {
		dec, err := schemas.NewDecoder(src, formats[i], o.Registry)
		if err != nil {
			errs = append(errs, fmt.Errorf("processor: decoder for %s: %w", cfg.Inputs()[i], err))
		}
		p.decoders = append(p.decoders, dec)
	}
	return p, errors.Join(errs...)
}

func registererOrNew(r prometheus.Registerer) prometheus.Registerer {
	if r == nil {
		return prometheus.NewRegistry() // metrics go nowhere
	}
	return r
}

// Ready reports whether the processor is in the group, restored and cycling.
func (p *Processor) Ready() bool {
	ready, _ := p.Readiness()
	return ready
}

// Readiness reports whether the processor is ready and, when it is not, why:
// joining the group or restoring, out of the group after a fault (and
// rejoining), or stopping on a fault no rejoin can fix.
func (p *Processor) Readiness() (bool, string) {
	switch f := p.faults.state(); {
	case f.fatal != nil || (f.reason != "" && !f.rejoined):
		return false, f.reason
	case f.reason != "":
		return false, "back in the group, restoring the new assignment; before: " + f.reason
	case !p.ready.Load():
		return false, "joining the group or restoring state"
	}
	return true, ""
}

// Alive reports whether the loop makes progress: it completed a cycle or an
// idle poll (or a restore made progress) within the window, and has not been
// out of the group (rejoining, or between Kafka sessions) for longer than
// that, nor met a fatal fault. A loop that polls without a group would
// otherwise look alive forever.
func (p *Processor) Alive(within time.Duration) bool {
	f := p.faults.state()
	if f.fatal != nil || (f.reason != "" && !f.rejoined && time.Since(f.since) >= within) {
		return false
	}
	last := p.lastCycle.Load()
	return last == 0 || time.Since(time.Unix(0, last)) < within
}

// Stats returns a snapshot of the running totals.
func (p *Processor) Stats() StatsSnapshot {
	s := &p.stats
	s.mu.Lock()
	kinds := make(map[string]int64, len(s.byKind))
	for k, v := range s.byKind {
		kinds[k] = v
	}
	s.mu.Unlock()
	return StatsSnapshot{
		Events: s.events.Load(), DeadLetters: s.deadLetters.Load(), Triggers: s.triggers.Load(),
		PendingTimers: s.pending.Load(), Erasures: s.erasures.Load(), TriggersByKind: kinds,
	}
}
