package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/state"
)

// At-least-once mode: no Kafka transactions. A cycle produces its triggers,
// dead letters and changelog records, waits until every one is acknowledged,
// then applies the workers' Pebble batches (state and input offsets
// together), then commits the consumed offsets to the group. Pebble, not the
// group, says where each input resumes: the group's offsets may be behind
// the state's (restored from the changelog first), and a worker skips the
// records its state already holds (worker.runCycle).
//
// What a crash costs:
//   - before every record was acknowledged: the records that did reach
//     Kafka are duplicates in waiting (the input is processed again and
//     writes them again, with the same trigger IDs); the changelog may end
//     in a cut batch, which the restore ignores and repairs (restore.go).
//     The record that closes a batch is produced only after every other
//     record of the cycle is acknowledged, so a batch the restore applies
//     never lacks one of its triggers;
//   - after the acknowledgements, before Pebble: the restore replays the
//     whole batch from the changelog, so nothing is processed twice;
//   - after Pebble, before the group commit: nothing, since Pebble's
//     offsets win.
// So triggers may repeat (same IDs: senders deduplicate), state never
// counts an event twice, and nothing is lost.

// atLeastOnce is the at-least-once guarantee: a plain client, no
// transaction.
type atLeastOnce struct{ p *Processor }

// start creates the plain client of at-least-once mode.
func (g *atLeastOnce) start(_ context.Context, opts []kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
	if err != nil {
		return nil, fmt.Errorf("processor: kafka client: %w", err)
	}
	return cl, nil
}

func (g *atLeastOnce) close() { g.p.cl.Close() }

func (g *atLeastOnce) poll(ctx context.Context, max int) kgo.Fetches {
	return g.p.cl.PollRecords(ctx, max)
}

// begin: nothing to begin without a transaction.
func (g *atLeastOnce) begin() error { return nil }

// unapplied drops the records the state already holds: the group's
// offsets are committed after the state is applied, so after a crash in
// between they are behind the state's (restored from the changelog), and
// those records must not be applied twice. (SetOffsets cannot do it: kgo
// ignores it for a partition not yet returned by a poll.)
func (g *atLeastOnce) unapplied(recs []*kgo.Record, next int64) []*kgo.Record {
	return recs[appliedPrefix(recs, next):]
}

// appliedPrefix is how many of recs (one input partition's, in offset
// order) are below next, the offset the state says comes next: records it
// already holds.
func appliedPrefix(recs []*kgo.Record, next int64) int {
	if next < 0 {
		return 0
	}
	k := 0
	for k < len(recs) && recs[k].Offset < next {
		k++
	}
	return k
}

// closesBatches: without a transaction, the offsets record that ends every
// batch is how a restore tells a whole batch from one a crash cut short.
func (g *atLeastOnce) closesBatches() bool { return true }

// produceChangelog holds back the record that closes the batch: a restore
// applies a batch only once that record is in the changelog. Produced with
// the rest, it could be acknowledged before one of the cycle's triggers,
// and a crash in between would lose that trigger (the restored state has
// its event). So it goes out after everything else is acknowledged
// (endBatch).
func (g *atLeastOnce) produceChangelog(w *worker, r *kgo.Record) {
	if state.IsBatchEnd(r.Key) {
		w.batchEnd = r
		return
	}
	w.out.produce(r, w.chlogPromise)
}

// transactionalID: at-least-once mode has none.
func (g *atLeastOnce) transactionalID() string { return "" }

// endBatch ends a cycle in at-least-once mode; see the comment at the top
// of this file. It returns a session error (the group commit or the flush
// could not reach Kafka) apart from a fatal one (Pebble).
func (g *atLeastOnce) endBatch(ctx context.Context, active []*worker, cycleErr error) (sessErr, fatal error) {
	p := g.p
	endCtx, endCancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.TransactionTimeout)
	defer endCancel()
	p.failpoint("before-end")
	phase := time.Now()
	flushErr := p.cl.Flush(endCtx)
	produceErr := p.out.err.Load()
	if cycleErr == nil && produceErr == nil && flushErr == nil {
		// Everything else is acknowledged: now the records that close
		// the workers' batches (see worker.runCycle).
		for _, w := range active {
			if w.batchEnd != nil {
				p.out.produce(w.batchEnd, w.chlogPromise)
				w.batchEnd = nil
			}
		}
		flushErr = p.cl.Flush(endCtx)
	}
	phase = p.observePhase("flush", phase)
	produceErr = p.out.takeErr()
	if produceErr == nil && flushErr != nil {
		produceErr = &flushErr
	}
	if cycleErr != nil || produceErr != nil {
		p.m.commits.WithLabelValues("aborted").Inc()
		for _, w := range active {
			if err := w.abort(); err != nil {
				return nil, fmt.Errorf("processor: partition %d: dropping state after a failed cycle: %w", w.id, err)
			}
			// Without a transaction nothing rewinds the consumer:
			// go back to what the state has.
			if err := g.seekToState(w); err != nil {
				return nil, err
			}
		}
		if produceErr != nil && unproducible(*produceErr) {
			return nil, errUnproducible(*produceErr)
		}
		if produceErr != nil {
			p.log.Warn("cycle dropped: a produce failed; the records will be processed again (triggers already written may repeat)",
				zap.Error(*produceErr))
			if flushErr != nil {
				return fmt.Errorf("processor: flushing the cycle's records: %w", flushErr), nil
			}
		}
		return nil, nil
	}
	p.failpoint("after-end")
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for i, w := range active {
		if i == 1 {
			p.failpoint("mid-apply")
		}
		if err := w.commit(); err != nil {
			return nil, fmt.Errorf("processor: partition %d: applying state: %w", w.id, err)
		}
		p.countEmitted(w)
		for j := range w.inputs {
			in := &w.inputs[j]
			if in.next < 0 {
				continue
			}
			if offsets[in.topic] == nil {
				offsets[in.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[in.topic][w.id] = kgo.EpochOffset{Epoch: -1, Offset: in.next}
		}
	}
	p.observePhase("apply", phase)
	p.commitCount.Add(1)
	p.m.commits.WithLabelValues("committed").Inc()
	p.failpoint("after-apply")
	p.updatePending()
	// The group's offsets are for monitoring (lag) and for a rollback to
	// exactly-once mode: the state's offsets decide where inputs resume,
	// so the commit is asynchronous (kgo keeps commits in order) and a
	// failure loses nothing. Waiting for it cost a round trip per cycle.
	commitCtx, commitCancel := context.WithTimeout(context.Background(), p.cfg.TransactionTimeout)
	p.cl.CommitOffsets(commitCtx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		defer commitCancel()
		if err == nil && resp != nil {
			for _, t := range resp.Topics {
				for _, pt := range t.Partitions {
					if perr := kerr.ErrorForCode(pt.ErrorCode); perr != nil && err == nil {
						err = fmt.Errorf("%s/%d: %w", t.Topic, pt.Partition, perr)
					}
				}
			}
		}
		if err != nil {
			p.log.Warn("committing consumed offsets to the group failed; the state's offsets stay authoritative", zap.Error(err))
		}
	})
	return nil, nil
}

// seekToState moves the consumer of each of w's inputs to the next offset
// w's committed state expects, and forgets what it had buffered for them.
// An input the state has no offset for keeps the group's position. It is
// used after a dropped cycle: kgo ignores SetOffsets for a partition no
// poll has returned yet, but such an input consumed nothing to rewind.
func (g *atLeastOnce) seekToState(w *worker) error {
	offs, err := w.part.Offsets()
	if err != nil {
		return err
	}
	set := map[string]map[int32]kgo.EpochOffset{}
	for i := range w.inputs {
		in := &w.inputs[i]
		if o, ok := offs.Inputs[in.topic]; ok {
			set[in.topic] = map[int32]kgo.EpochOffset{w.id: {Epoch: -1, Offset: o}}
		}
	}
	if len(set) > 0 {
		g.p.cl.SetOffsets(set)
	}
	return nil
}
