package processor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

// The Kafka session: Run starts one (run), and a new one when a session
// fails; a session checks the topics, opens the guarantee's client, joins
// the group and loops over cycles (cycle.go) until it ends. Fencing and the
// faults that take the processor out of its group are in faults.go.

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
			fields = append(fields, zap.String("transactional_id", p.g.transactionalID()),
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
	cl, err := p.g.start(ctx, opts)
	if err != nil {
		return err
	}
	p.cl, p.out.cl, p.adm = cl, cl, kadm.NewClient(cl)
	defer func() {
		p.ready.Store(false)
		p.clearServing()
		p.g.close()
		p.cl, p.out.cl, p.adm = nil, nil, nil
	}()
	p.log.Info("processor started", zap.String("group", p.cfg.Group), zap.Strings("inputs", p.cfg.Inputs()),
		zap.Int32("partitions", p.nparts), zap.String("instance_id", p.cfg.InstanceID), zap.String("guarantee", string(p.cfg.Guarantee)))
	defer p.startRepartition(ctx, base)() // raw inputs (repartition.go)
	return p.loop(ctx, parent)
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
	p.out.trigEnc = enc
	// Made (and, with Avro, registered) at start even when no policy
	// suppresses anything yet, so that a schema the registry refuses stops
	// the start, not a cycle hours later.
	sup, err := schemas.NewSuppressionEncoder(ctx, p.cfg.SuppressionsFormat(), p.registry, schemas.ValueSubject(p.cfg.SuppressionsTopic()))
	if err != nil {
		return fmt.Errorf("processor: suppression encoder: %w", err)
	}
	p.out.supEnc = sup
	return nil
}
