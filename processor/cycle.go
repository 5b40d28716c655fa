package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// The cycle: poll, hand each worker its partition's records, run the
// workers in parallel, and end the cycle's output through the guarantee
// (guarantee.go), which applies or drops the workers' Pebble batches.

// loop runs cycles until ctx is done or a cycle fails in a way the loop
// cannot handle: a session error (Run starts a new session), a fatal fault
// or a fatal error. parent is Run's context, ctx the session's (faults.go).
func (p *Processor) loop(ctx, parent context.Context) error {
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

// freshFetchWait bounds the wait for the fetch a poll sends (see runCycle):
// on a busy broker a fetch with data is answered within a millisecond or
// two; one without waits for data, and is left for the next cycle.
const freshFetchWait = 5 * time.Millisecond

// poll takes up to max records, waiting at most wait for the first.
func (p *Processor) poll(ctx context.Context, wait time.Duration, max int) kgo.Fetches {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return p.g.poll(ctx, max)
}

// runCycle is one poll → process → transaction → state cycle.
func (p *Processor) runCycle(ctx context.Context) error {
	pollStart := time.Now()
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
	if fetches.NumRecords() > 0 {
		p.observePhase("poll", pollStart)
	}
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
	if err := p.hand(fetches); err != nil {
		return err
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
	if err := p.g.begin(); err != nil {
		return err
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
	endErr, err := p.g.endBatch(ctx, active, cycleErr)
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

// hand gives each worker its partition's records of the poll.
func (p *Processor) hand(fetches kgo.Fetches) error {
	for _, w := range p.workers {
		for i := range w.inputs {
			w.inputs[i].recs = nil
		}
	}
	var fatal error
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
	return fatal
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
