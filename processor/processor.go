package processor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
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
	trigEnc  *schemas.TriggerEncoder
	supEnc   *schemas.SuppressionEncoder

	sess    *kgo.GroupTransactSession // exactly-once mode; nil in at-least-once mode
	cl      *kgo.Client               // the session's client, or the plain one in at-least-once mode
	adm     *kadm.Client
	nparts  int32
	workers map[int32]*worker

	// assignment is written by the group's rebalance callbacks and read
	// by the loop after each poll.
	assignment struct {
		sync.Mutex
		parts map[int32]map[string]bool // partition number -> the input topics assigned with it
		err   error
	}

	failpoint  func(string)
	trace      string // customer ID prefix to trace at info level (tests only)
	produceErr atomic.Pointer[error]
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
	// fault it stops on (faults.go).
	faults faults

	// For the admin API (owner.go), read from its goroutines.
	adminAddr  string
	partitions atomic.Int32 // the input partition count, once known
	serving    struct {
		sync.Mutex
		parts map[int32]bool // partitions with a restored worker
	}
	sideMu  sync.Mutex
	side    *side // the admin's Kafka client, while running
	running bool

	misroutes misrouteLog // partitioner_misrouted.go
}

// Stats are running totals for the demo and tests. Counters only include
// committed cycles.
type Stats struct {
	events      atomic.Int64
	deadLetters atomic.Int64
	triggers    atomic.Int64
	pending     atomic.Int64
	erasures    atomic.Int64
	mu          sync.Mutex
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
	p.sources = []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile}
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

// Run connects, checks the topics, joins the group and processes until ctx
// is cancelled (then it finishes the cycle in flight, commits and leaves the
// group) or a fatal error occurs.
//
// A failed Kafka session (a transaction that could not begin or end, as
// when the broker goes away) is not fatal: franz-go's advice for such errors
// is to close the client, so Run closes the session and starts a new one,
// which fences the old open transaction, rejoins the group and restores
// every partition from the changelog, as a restarted process would. It
// gives up after maxSessionFailures new sessions in a row that committed
// nothing. A fault that no new session can fix (another process with the
// same instance ID, a group that cannot be rejoined: faults.go) ends Run
// with that error.
func (p *Processor) Run(ctx context.Context) error {
	p.setRunning(true)
	defer p.setRunning(false)
	for failures := 0; ; {
		committedBefore := p.commitCount.Load()
		err := p.run(ctx)
		if fatal := p.faults.state().fatal; fatal != nil {
			return fatal
		}
		if err != nil && ctx.Err() != nil {
			// Stopped while starting (checking topics, fencing,
			// restoring): nothing was committed past what is
			// persisted.
			p.log.Info("processor stopped while starting", zap.Error(err))
			return nil
		}
		var se *sessionError
		if !errors.As(err, &se) {
			return err
		}
		if refused(err) {
			// Wrong credentials, ACLs or certificates: no new session
			// will fix that.
			return fmt.Errorf("processor: no retry can fix this (credentials, permissions or certificate): %w", err)
		}
		if p.commitCount.Load() > committedBefore {
			failures = 0
		}
		failures++
		if failures > maxSessionFailures {
			return fmt.Errorf("processor: giving up after %d Kafka sessions in a row failed: %w", failures, err)
		}
		backoff := time.Duration(1<<(failures-1)) * time.Second
		fields := []zap.Field{zap.Error(err), zap.Int("failures_in_a_row", failures), zap.Duration("backoff", backoff)}
		if producerFenced(err) {
			fields = append(fields, zap.String("transactional_id", p.transactionalID()),
				zap.String("cause", "the broker aborted a transaction older than transaction_timeout, or another process initialized this transactional ID"))
		}
		p.log.Warn("kafka session failed; starting a new one after a pause", fields...)
		p.m.sessionRestarts.Inc()
		p.faults.out(fmt.Sprintf("Kafka session failed (%v); starting a new one in %s, attempt %d of %d",
			err, backoff, failures, maxSessionFailures))
		p.resetSession()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

// maxSessionFailures bounds the new sessions Run starts in a row without a
// commit in between: 1+2+4+8+16 s of pauses, enough for a broker restart or a
// leader election, not for a broker that is gone or a producer fenced by
// another instance with the same instance ID.
const maxSessionFailures = 5

// refused reports an error that no retry can fix: the broker refused our
// credentials or permissions, or we refused its certificate.
func refused(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed) ||
		errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostname)
}

// sessionError is a failure of the Kafka session itself; see Run.
type sessionError struct{ err error }

func (e *sessionError) Error() string { return e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

// resetSession forgets the workers and the assignment of a failed session.
// Their batches were aborted when the session's last transaction failed,
// and Pebble holds only committed state, so the next session restores each
// partition it is assigned from the changelog.
func (p *Processor) resetSession() {
	p.ready.Store(false)
	p.clearServing()
	clear(p.workers)
	// The next session may be assigned other partitions.
	p.m.forgetPartitions()
	a := &p.assignment
	a.Lock()
	a.parts, a.err = nil, nil
	a.Unlock()
}

func (p *Processor) run(parent context.Context) error {
	// A fatal fault (faults.go) cancels ctx, so that a restore or a poll in
	// flight stops at once; parent is the caller's.
	ctx, stop := context.WithCancelCause(parent)
	defer stop(nil)
	p.faults.begin(stop)
	base, err := baseOpts(&p.cfg, p.log)
	if err != nil {
		return err
	}
	if err := p.prepare(ctx, base); err != nil {
		return err
	}

	codec, err := compressionCodec(p.cfg.Compression)
	if err != nil {
		return fmt.Errorf("processor: compression: %w", err)
	}
	start := kgo.NewOffset().AtEnd()
	if p.cfg.StartFrom == "earliest" {
		start = kgo.NewOffset().AtStart()
	}
	opts := append(base,
		kgo.WithHooks(p.kprom, groupWatch{p}),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Inputs()...),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come back as control records, so that
		// the polled position passes them and an input written by a
		// transactional producer can be seen caught up (caughtup.go).
		kgo.KeepControlRecords(),
		kgo.FetchMaxPartitionBytes(p.cfg.FetchPartitionBytes),
		// Partition p of every input topic must go to the same member,
		// which owns p's state. The co-partitioned balancer does that
		// cooperatively; range (eager) does it too and is offered second
		// so that a rolling upgrade from a release that offered only
		// range keeps a protocol every member supports until the last
		// member is upgraded.
		kgo.Balancers(copartitionedBalancer{userData: encodeUserData(p.adminAddr)}, kgo.RangeBalancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(p.cfg.SessionTimeout),
		kgo.RecordPartitioner(newPartitioner(p.cfg.Topics.Changelog, p.cfg.Partitioner)),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(codec),
		// A cycle's output (changelog, triggers, suppressions, dead
		// letters) is flushed at its end, and a Produce past kgo's
		// default of 10,000 buffered records blocks the worker on broker
		// round trips mid-cycle. The output is bounded by the cycle's
		// records and the state they touch, which are in memory anyway.
		kgo.MaxBufferedRecords(max(10_000, 4*p.cfg.PollRecords)),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onRevoked),
	)
	if p.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(p.cfg.InstanceID))
	}
	if p.cfg.Guarantee == AtLeastOnce {
		err = p.startAtLeastOnce(opts)
	} else {
		err = p.startTransactional(ctx, opts)
	}
	if err != nil {
		return err
	}
	defer func() {
		p.ready.Store(false)
		p.clearServing()
		if p.sess != nil {
			p.sess.Close()
		} else {
			p.cl.Close()
		}
		p.sess, p.cl = nil, nil
	}()
	p.log.Info("processor started", zap.String("group", p.cfg.Group), zap.Strings("inputs", p.cfg.Inputs()),
		zap.Int32("partitions", p.nparts), zap.String("instance_id", p.cfg.InstanceID), zap.String("guarantee", string(p.cfg.Guarantee)))
	defer p.startRepartition(ctx, base)() // raw inputs (repartition.go)
	for ctx.Err() == nil {
		gen := p.faults.generation()
		err := p.runCycle(ctx)
		if fatal := p.faults.state().fatal; fatal != nil {
			return fatal
		}
		var retry *retryableError
		switch {
		case err == nil:
			p.faults.cycled(gen)
		case errors.Is(err, kerr.FencedInstanceID):
			// The transaction's offset commit met the group's fencing
			// before the heartbeat did.
			p.fail(p.errFenced(err))
			return p.faults.state().fatal
		case parent.Err() != nil:
			// Shutting down interrupted a restore or a request:
			// nothing was committed past what is persisted.
			p.log.Info("processor stopped during a cycle", zap.Error(err))
			return nil
		case errors.As(err, &retry):
			p.log.Warn("cycle aborted on a retryable error; retrying", zap.Error(err), zap.Duration("backoff", retryBackoff))
			select {
			case <-ctx.Done():
			case <-time.After(retryBackoff):
			}
		case errors.As(err, new(*sessionError)):
			if producerFenced(err) {
				if fatal := p.awaitGroupVerdict(ctx); fatal != nil {
					return fatal
				}
			}
			return err // Run starts a new session
		default:
			p.log.Error("processor stopping on a fatal error", zap.Error(err))
			return err
		}
	}
	if fatal := p.faults.state().fatal; fatal != nil {
		return fatal
	}
	p.log.Info("processor stopped: context done")
	return nil
}

// startTransactional creates the exactly-once session: a consumer group and
// a transactional producer in one client.
func (p *Processor) startTransactional(ctx context.Context, opts []kgo.Opt) error {
	sess, err := kgo.NewGroupTransactSession(append(opts,
		kgo.TransactionalID(p.transactionalID()),
		kgo.TransactionTimeout(p.cfg.TransactionTimeout),
	)...)
	if err != nil {
		return fmt.Errorf("processor: kafka client: %w", err)
	}
	// Initialize the transactional producer now, not at the first
	// produce: InitProducerID fences a crashed predecessor with the same
	// transactional ID and aborts its open transaction, which would
	// otherwise hold the changelog's last stable offset (and so the
	// restore) until the transaction timeout.
	initCtx, initCancel := context.WithTimeout(ctx, p.cfg.TransactionTimeout)
	_, _, err = sess.Client().ProducerID(initCtx)
	initCancel()
	if err != nil {
		sess.Close()
		return &sessionError{fmt.Errorf("processor: initializing the transactional producer: %w", err)}
	}
	p.sess, p.cl = sess, sess.Client()
	p.adm = kadm.NewClient(p.cl)
	return nil
}

// prepare checks and creates topics and registers the trigger schema.
func (p *Processor) prepare(ctx context.Context, base []kgo.Opt) error {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("processor: kafka client: %w", err)
	}
	defer cl.Close()
	if err := prepareRepartition(ctx, kadm.NewClient(cl), &p.cfg, p.log); err != nil {
		return err
	}
	n, err := prepareTopics(ctx, kadm.NewClient(cl), &p.cfg, p.log)
	if err != nil {
		return err
	}
	p.nparts = n
	p.partitions.Store(n)
	if err := p.useStateSource(); err != nil {
		return err
	}
	enc, err := schemas.NewTriggerEncoder(ctx, p.cfg.Encodings.Triggers, p.registry, p.cfg.Topics.Triggers+"-value")
	if err != nil {
		return fmt.Errorf("processor: trigger encoder: %w", err)
	}
	p.trigEnc = enc
	// Made (and, with Avro, registered) at start even when no policy
	// suppresses anything yet, so that a schema the registry refuses stops
	// the start, not a cycle hours later.
	sup, err := schemas.NewSuppressionEncoder(ctx, p.cfg.SuppressionsFormat(), p.registry, schemas.ValueSubject(p.cfg.SuppressionsTopic()))
	if err != nil {
		return fmt.Errorf("processor: suppression encoder: %w", err)
	}
	p.supEnc = sup
	return nil
}

// freshFetchWait bounds the wait for the fetch a poll sends (see runCycle):
// on a busy broker a fetch with data is answered within a millisecond or
// two; one without waits for data, and is left for the next cycle.
const freshFetchWait = 5 * time.Millisecond

// poll takes up to max records, waiting at most wait for the first.
func (p *Processor) poll(ctx context.Context, wait time.Duration, max int) kgo.Fetches {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if p.sess != nil {
		return p.sess.PollRecords(ctx, max)
	}
	return p.cl.PollRecords(ctx, max)
}

// runCycle is one poll → process → transaction → state cycle.
func (p *Processor) runCycle(ctx context.Context) error {
	fetches := p.poll(ctx, p.pollWait(), p.cfg.PollRecords)
	// Rebalances wait until AllowRebalance: the assignment cannot change
	// under a cycle, so a revoke never lands mid-transaction.
	defer p.cl.AllowRebalance()
	if fetches.IsClientClosed() {
		return nil
	}
	// The client keeps one fetch per broker buffered, and sends the next
	// when a poll takes it. So the fetch just taken was answered right
	// after the previous poll, and holds only what had arrived by then:
	// what arrived during the last cycle is in the fetch sent now, which
	// the broker answers at once. Waiting a moment for it takes those
	// records in this cycle rather than the next: about a cycle less
	// latency in live traffic, at most freshFetchWait more per cycle.
	if n := fetches.NumRecords(); n > 0 && n < p.cfg.PollRecords {
		more := p.poll(ctx, freshFetchWait, p.cfg.PollRecords-n)
		if more.IsClientClosed() {
			return nil
		}
		fetches = append(fetches, more...)
	}
	var fatal error
	fetches.EachError(func(t string, part int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		p.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", part), zap.Error(err))
		// Producers may be kept from the brokers too: see brokersAway.
		p.brokersAway(p.clock())
	})
	if err := p.syncAssignment(ctx); err != nil {
		return err
	}
	for _, w := range p.workers {
		for i := range w.inputs {
			w.inputs[i].recs = nil
		}
	}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		w := p.workers[fp.Partition]
		if w == nil {
			// Cannot happen while rebalances are blocked; if it
			// does, the records are not lost: the transaction
			// aborts and they are polled again.
			fatal = fmt.Errorf("processor: records for unassigned partition %s/%d", fp.Topic, fp.Partition)
			return
		}
		for i := range w.inputs {
			in := &w.inputs[i]
			if in.topic != fp.Topic {
				continue
			}
			// One poll can carry several fetches of the same
			// partition (a backlog, buffered fetches): keep them all,
			// in order. The common single fetch costs no copy; more
			// are appended to a copy, never into kgo's array.
			if in.recs == nil {
				in.recs = fp.Records
			} else {
				in.recs = append(in.recs[:len(in.recs):len(in.recs)], fp.Records...)
			}
			in.logStart = fp.LogStartOffset
		}
	})
	if fatal != nil {
		return fatal
	}
	now := p.clock()
	p.checkCaughtUp(ctx, now)

	active := make([]*worker, 0, len(p.workers))
	for _, w := range p.workers {
		if w.hasWork(now) {
			active = append(active, w)
		}
	}
	p.lastCycle.Store(time.Now().UnixNano())
	if len(active) == 0 {
		p.ready.Store(true)
		return nil
	}
	started := time.Now()
	if p.sess != nil {
		if err := p.sess.Begin(); err != nil {
			return &sessionError{fmt.Errorf("processor: begin transaction: %w", err)}
		}
	}
	var wg sync.WaitGroup
	for _, w := range active {
		wg.Go(func() { w.cycle(now) })
	}
	wg.Wait()
	p.m.cyclePhase.WithLabelValues("process").Observe(time.Since(started).Seconds())
	var cycleErr error
	for _, w := range active {
		if w.err != nil {
			cycleErr = errors.Join(cycleErr, fmt.Errorf("partition %d: %w", w.id, w.err))
		}
	}
	if p.trace != "" {
		p.traceHeads()
	}
	var endErr, err error
	if p.sess != nil {
		endErr, err = p.endTransaction(ctx, active, cycleErr)
	} else {
		endErr, err = p.endAtLeastOnce(ctx, active, cycleErr)
	}
	if err != nil {
		return err
	}
	p.m.cycleSeconds.Observe(time.Since(started).Seconds())
	p.lastCycle.Store(time.Now().UnixNano())
	if cycleErr != nil {
		if retryable(active) {
			return &retryableError{cycleErr}
		}
		return cycleErr
	}
	if endErr != nil {
		return &sessionError{endErr}
	}
	p.ready.Store(true)
	return nil
}

// endTransaction ends the cycle's transaction (exactly-once mode): it
// commits when every worker and every produce succeeded, then applies the
// workers' Pebble batches; otherwise it aborts and drops them. It returns the
// error of End (the session is then unusable) apart from a fatal error.
func (p *Processor) endTransaction(ctx context.Context, active []*worker, cycleErr error) (endErr, fatal error) {
	// The cycle in flight finishes even when ctx is done (graceful
	// shutdown); End gets its own bounded context.
	endCtx, endCancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.TransactionTimeout)
	// Flush before deciding: a record that fails while End flushes would
	// otherwise be missing from a transaction that commits the offsets of
	// the input that produced it. End commits whatever was acked; it does
	// not look at produce errors.
	phase := time.Now()
	flushErr := p.cl.Flush(endCtx)
	phase = p.observePhase("flush", phase)
	produceErr := p.produceErr.Swap(nil)
	if produceErr == nil && flushErr != nil {
		produceErr = &flushErr
	}
	commit := cycleErr == nil && produceErr == nil
	p.failpoint("before-end")
	committed, endErr := p.sess.End(endCtx, kgo.TransactionEndTry(commit))
	endCancel()
	phase = p.observePhase("end", phase)
	if committed {
		defer p.observePhase("apply", phase)
		p.commitCount.Add(1)
		p.m.commits.WithLabelValues("committed").Inc()
		p.failpoint("after-end")
		for i, w := range active {
			if i == 1 {
				p.failpoint("mid-apply")
			}
			if err := w.commit(); err != nil {
				// Kafka has the output and the changelog; local
				// state is behind and is caught up on restart.
				return nil, fmt.Errorf("processor: partition %d: applying state after commit: %w", w.id, err)
			}
			p.countEmitted(w)
		}
		p.failpoint("after-apply")
		p.updatePending()
	} else {
		p.m.commits.WithLabelValues("aborted").Inc()
		for _, w := range active {
			if err := w.abort(); err != nil {
				return nil, fmt.Errorf("processor: partition %d: dropping state after abort: %w", w.id, err)
			}
		}
		switch {
		case produceErr != nil && unproducible(*produceErr):
			return nil, errUnproducible(*produceErr)
		case produceErr != nil:
			p.log.Warn("transaction aborted: a produce failed; the records will be processed again", zap.Error(*produceErr))
		case commit && endErr == nil:
			p.log.Warn("transaction aborted by the session (a rebalance or a failed offset commit); the records will be processed again")
		}
	}
	if endErr != nil {
		endErr = fmt.Errorf("processor: ending transaction: %w", endErr)
	}
	return endErr, nil
}

// observePhase records the cycle phase that started at since, and returns
// now, the start of the next.
func (p *Processor) observePhase(phase string, since time.Time) time.Time {
	now := time.Now()
	p.m.cyclePhase.WithLabelValues(phase).Observe(now.Sub(since).Seconds())
	return now
}

// traceHeads checks, in trace mode, that the consumer's positions (what
// End will commit) are what the workers queued: a difference means records
// polled but not in any queue, which a crash would lose.
func (p *Processor) traceHeads() {
	heads := p.cl.UncommittedOffsets()
	for _, w := range p.workers {
		for i := range w.inputs {
			in := &w.inputs[i]
			if h, ok := heads[in.topic][w.id]; ok && in.next >= 0 && h.Offset != in.next {
				p.log.Warn("trace: consumer position differs from the queued offset", zap.String("topic", in.topic),
					zap.Int32("partition", w.id), zap.Int64("consumer", h.Offset), zap.Int64("queued", in.next))
			}
		}
	}
}

// retryBackoff is the pause after a cycle aborted on a retryable error.
const retryBackoff = time.Second

// retryableError is a cycle failure that a later attempt may not meet (a
// schema registry that did not answer). The transaction was aborted, so the
// records are polled again.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// retryable reports whether every failed worker failed retryably.
func retryable(ws []*worker) bool {
	for _, w := range ws {
		var r *retryableError
		if w.err != nil && !errors.As(w.err, &r) {
			return false
		}
	}
	return true
}

func (p *Processor) countEmitted(w *worker) {
	if len(w.emitted) == 0 {
		return
	}
	p.stats.mu.Lock()
	for _, e := range w.emitted {
		p.stats.byKind[e.kind]++
	}
	p.stats.mu.Unlock()
	for _, e := range w.emitted {
		p.m.triggers.WithLabelValues(string(e.rule), string(e.channel)).Inc()
	}
	p.stats.triggers.Add(int64(len(w.emitted)))
}

func (p *Processor) updatePending() {
	var n int64
	for _, w := range p.workers {
		n += w.part.PendingTimers()
	}
	p.stats.pending.Store(n)
}

// produce sends r within the current transaction.
func (p *Processor) produce(r *kgo.Record, promise func(*kgo.Record, error)) {
	p.cl.Produce(context.Background(), r, promise)
}

// promise is the completion of records whose offset does not matter.
func (p *Processor) promise(r *kgo.Record, err error) {
	if err != nil {
		p.produceFailed(r, err)
	}
}

// produceFailed keeps the cycle's first produce error, naming the record
// (never its content: it may hold customer data).
func (p *Processor) produceFailed(r *kgo.Record, err error) {
	err = fmt.Errorf("producing to %s partition %d (key %d bytes, value %d bytes): %w",
		r.Topic, r.Partition, len(r.Key), len(r.Value), err)
	if p.produceErr.CompareAndSwap(nil, &err) {
		p.log.Warn("produce failed; the cycle is dropped", zap.Error(err))
	}
}

// unproducible reports a produce error that no retry can fix: the broker
// will refuse the same record every time, so the cycle would be dropped and
// retried forever. The processor stops instead, saying which record.
func unproducible(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) ||
		errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.CorruptMessage) ||
		errors.Is(err, kerr.InvalidRequiredAcks) || errors.Is(err, kerr.TopicAuthorizationFailed)
}

// errUnproducible is the fatal error for an unproducible record.
func errUnproducible(err error) error {
	return fmt.Errorf("processor: the broker refuses a record for good; stopping rather than retrying the cycle forever "+
		"(a customer's state grown past the broker's max.message.bytes? raise it on the changelog topic, or bound the rules' keyed runs): %w", err)
}

// emit encodes a trigger and produces it keyed by customer ID, with its ID
// in a header so that consumers can deduplicate without decoding.
func (p *Processor) emit(w *worker, tr *schemas.Trigger) error {
	val, err := p.trigEnc.Encode(nil, tr)
	if err != nil {
		return fmt.Errorf("processor: encoding trigger %s: %w", tr.ID, err)
	}
	p.produce(&kgo.Record{
		Topic: p.cfg.Topics.Triggers,
		Key:   []byte(tr.Customer),
		Value: val,
		Headers: []kgo.RecordHeader{
			{Key: HeaderTriggerID, Value: []byte(tr.ID)},
			{Key: HeaderRuleID, Value: []byte(tr.Rule)},
			{Key: HeaderKind, Value: []byte(tr.Kind)},
			{Key: HeaderChannel, Value: []byte(tr.Channel)},
		},
		Timestamp: tr.FiredAt,
	}, p.promise)
	w.emitted = append(w.emitted, emitted{rule: tr.Rule, channel: tr.Channel, kind: tr.Kind})
	return nil
}

// Header names on trigger records: the contract with downstream senders.
const (
	HeaderTriggerID = "trigger_id"
	HeaderRuleID    = "rule_id"
	HeaderKind      = "kind"
	HeaderChannel   = "channel"
)

type emitted struct {
	rule    schemas.RuleID
	channel schemas.Channel
	kind    string
}

func (p *Processor) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	// After the assignment is recorded: the first cycle that starts after
	// this takes it, and ends a fault (faults.cycled).
	defer p.faults.assigned()
	a := &p.assignment
	a.Lock()
	defer a.Unlock()
	if a.parts == nil {
		a.parts = map[int32]map[string]bool{}
	}
	for t, ps := range assigned {
		for _, part := range ps {
			if part >= p.nparts {
				a.err = fmt.Errorf("processor: assigned %s partition %d but the inputs had %d partitions at start: "+
					"the partition count changed at run time, which moves customers between partitions; stop, "+
					"and repartition the state deliberately", t, part, p.nparts)
			}
			if a.parts[part] == nil {
				a.parts[part] = map[string]bool{}
			}
			a.parts[part][t] = true
		}
	}
}

func (p *Processor) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	a := &p.assignment
	a.Lock()
	defer a.Unlock()
	for t, ps := range revoked {
		for _, part := range ps {
			delete(a.parts[part], t)
			if len(a.parts[part]) == 0 {
				delete(a.parts, part)
			}
		}
	}
}

// syncAssignment starts workers for newly assigned partitions (restoring
// their state from the changelog first) and stops those of revoked ones.
// A revoked partition keeps its local state: if it comes back, the restore
// only replays what others wrote meanwhile.
func (p *Processor) syncAssignment(ctx context.Context) error {
	a := &p.assignment
	a.Lock()
	if a.err != nil {
		err := a.err
		a.Unlock()
		return err
	}
	want := make([]int32, 0, len(a.parts))
	for part, topics := range a.parts {
		if len(topics) != len(p.cfg.Inputs()) {
			a.Unlock()
			// The state of partition p serves every input's partition
			// p: half an assignment would process some of a customer's
			// events in one place and the rest in another.
			return fmt.Errorf("processor: partition %d is assigned for %d of the %d input topics: a member of the group "+
				"does not assign by partition number (another program or release in the same group?)", part, len(topics), len(p.cfg.Inputs()))
		}
		want = append(want, part)
	}
	a.Unlock()
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	wantSet := make(map[int32]bool, len(want))
	for _, part := range want {
		wantSet[part] = true
	}
	for part := range p.workers {
		if !wantSet[part] {
			p.setServing(part, false)
			delete(p.workers, part)
			// Its new owner exports them now: two instances must not
			// both report a partition's pending timers.
			p.m.forgetPartition(part)
			p.log.Info("partition revoked", zap.Int32("partition", part))
		}
	}
	for _, part := range want {
		if p.workers[part] != nil {
			continue
		}
		sp := p.store.Partition(part)
		if err := sp.Err(); err != nil {
			return err
		}
		sp, err := p.restore(ctx, part, sp)
		if err != nil {
			return err
		}
		w, err := newWorker(p, part, sp)
		if err != nil {
			return err
		}
		p.workers[part] = w
		p.setServing(part, true)
		p.log.Info("partition assigned", zap.Int32("partition", part), zap.Int64("pending_timers", sp.PendingTimers()))
	}
	p.updatePending()
	return nil
}
