package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Exactly-once mode: a cycle's triggers, dead letters and changelog records
// and its consumed offsets commit in one Kafka transaction
// (GroupTransactSession); the workers' Pebble batches are applied after the
// commit, and dropped on an abort. See doc.go for what a crash costs.
type exactlyOnce struct {
	p    *Processor
	sess *kgo.GroupTransactSession // while a session runs
}

// start creates the session: a consumer group and a transactional producer
// in one client.
func (g *exactlyOnce) start(ctx context.Context, opts []kgo.Opt) (*kgo.Client, error) {
	p := g.p
	sess, err := kgo.NewGroupTransactSession(append(opts,
		kgo.TransactionalID(g.transactionalID()),
		kgo.TransactionTimeout(p.cfg.TransactionTimeout),
	)...)
	if err != nil {
		return nil, fmt.Errorf("processor: kafka client: %w", err)
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
		return nil, &sessionError{fmt.Errorf("processor: initializing the transactional producer: %w", err)}
	}
	g.sess = sess
	return sess.Client(), nil
}

func (g *exactlyOnce) close() {
	g.sess.Close()
	g.sess = nil
}

func (g *exactlyOnce) poll(ctx context.Context, max int) kgo.Fetches {
	return g.sess.PollRecords(ctx, max)
}

func (g *exactlyOnce) begin() error {
	if err := g.sess.Begin(); err != nil {
		return &sessionError{fmt.Errorf("processor: begin transaction: %w", err)}
	}
	return nil
}

// endBatch ends the cycle's transaction: it commits when every worker and
// every produce succeeded, then applies the workers' Pebble batches;
// otherwise it aborts and drops them. The session error is End's (the
// session is then unusable).
func (g *exactlyOnce) endBatch(ctx context.Context, active []*worker, cycleErr error) (endErr, fatal error) {
	p := g.p
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
	produceErr := p.out.takeErr()
	if produceErr == nil && flushErr != nil {
		produceErr = &flushErr
	}
	commit := cycleErr == nil && produceErr == nil
	p.failpoint("before-end")
	committed, endErr := g.sess.End(endCtx, kgo.TransactionEndTry(commit))
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

// unapplied: the transaction commits the state's offsets and the group's
// together, so the group's position is the state's, and nothing is dropped.
// The group's offsets can still be set behind the state's from outside (an
// operator's kafka-consumer-groups --reset-offsets): the state is the record
// of what was applied, so records below its offsets are skipped, and said.
// (An earlier broker-restart failure blamed on a broker losing half of a
// committed transaction was the test producer's own duplicates: see
// harness.Producer.Hold.)
func (g *exactlyOnce) unapplied(recs []*kgo.Record, next int64) []*kgo.Record {
	k := appliedPrefix(recs, next)
	if k > 0 {
		g.p.log.Warn("the group's committed offset is behind the state's (were the offsets reset by hand?): skipping the records the state already holds",
			zap.String("topic", recs[0].Topic), zap.Int32("partition", recs[0].Partition),
			zap.Int64("group_offset", recs[0].Offset), zap.Int64("state_offset", next), zap.Int("skipped", k))
	}
	return recs[k:]
}

// closesBatches: a changelog batch is a transaction, whole or absent.
func (g *exactlyOnce) closesBatches() bool { return false }

func (g *exactlyOnce) produceChangelog(w *worker, r *kgo.Record) { w.out.produce(r, w.chlogPromise) }

// transactionalID is one per instance of the group, so that a restarted
// instance fences its own predecessor.
func (g *exactlyOnce) transactionalID() string { return g.p.cfg.Group + "-" + g.p.cfg.InstanceID }
