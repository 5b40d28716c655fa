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

// Faults that take the processor out of its consumer group, and what it does
// about each. kgo reports a lost group session (its manage loop broke out and
// backs off) through the HookGroupManageError hook, after it has called
// OnPartitionsLost; it then rejoins by itself. A failed transaction comes back
// from Begin or End as a sessionError (see Run).
//
//   - FENCED_INSTANCE_ID: another live process joined the group with our
//     instance ID (static membership) and took our place. Rejoining would
//     fence it in turn, forever, and both would stall: the processor stops at
//     once, non-zero, with one error line naming the instance ID and the fix.
//   - PRODUCER_FENCED, INVALID_PRODUCER_EPOCH (from Begin or End): the
//     transactional ID, which the instance ID names, was initialized by
//     another producer, or the broker aborted our transaction past its
//     timeout. The first means another process with our instance ID, whose
//     join fences our group membership within a heartbeat: the loop waits for
//     that verdict (groupVerdictWait) and stops as above. Without it, a new
//     session (Run), bounded by maxSessionFailures.
//   - Authorization, SASL and certificate errors: no retry fixes them; stop.
//   - Anything else (UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION after a session
//     timeout, a coordinator that moved or is down, GROUP_MAX_SIZE_REACHED):
//     kgo rejoins, up to maxGroupRejoins times in a row without an
//     assignment in between; then the processor stops, non-zero.
//
// In every case the processor is not ready (/readyz answers 503 with the
// reason) from the moment the fault is known until it is back in the group
// and has completed a cycle on its new assignment; and not alive (/healthz)
// once that has lasted longer than the liveness window.

// maxGroupRejoins bounds the group sessions in a row that kgo loses without
// an assignment in between. kgo backs off 0.25, 0.5, 1, 2, 4, then 5 s between
// attempts, each of which already retried its requests: about 25 s of pauses,
// plus the attempts.
const maxGroupRejoins = 8

// groupVerdictWait is how long a fenced producer waits for the group to say
// whether another process holds the instance ID: kgo heartbeats every 3 s,
// and the other process joins right after it initializes its producer.
const groupVerdictWait = 10 * time.Second

// faults is the processor's record of what keeps it out of the group.
type faults struct {
	mu        sync.Mutex
	reason    string    // why the processor is not ready; "" when nothing is wrong
	since     time.Time // when reason was set
	gen       int64     // assignments received (onAssigned), over every session
	rejoined  int64     // gen of the first assignment after reason was set; 0 before
	groupErrs int       // group sessions lost in a row without an assignment
	fatal     error     // no rejoin or new session can fix it: the processor stops
	stop      context.CancelCauseFunc
}

// begin starts a Kafka session: stop cancels its loop when a fault is fatal.
func (f *faults) begin(stop context.CancelCauseFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stop, f.groupErrs = stop, 0
	if f.fatal != nil {
		stop(f.fatal)
	}
}

// out records a fault that takes the processor out of the group.
func (f *faults) out(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fatal != nil {
		return
	}
	if f.reason == "" {
		f.since = time.Now()
	}
	f.reason, f.rejoined = reason, 0
}

// groupLost counts a lost group session and records the reason for n, the
// sessions lost in a row without an assignment, which it returns.
func (f *faults) groupLost(reason func(n int) string) int {
	f.mu.Lock()
	f.groupErrs++
	n := f.groupErrs
	f.mu.Unlock()
	f.out(reason(n))
	return n
}

// setFatal records err as the fault the processor stops on, and stops the
// session's loop. It reports whether err was the first: only that one is
// logged.
func (f *faults) setFatal(err error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fatal != nil {
		return false
	}
	if f.reason == "" {
		f.since = time.Now()
	}
	f.fatal, f.reason = err, err.Error()
	if f.stop != nil {
		f.stop(err)
	}
	return true
}

// assigned notes an assignment from the group (a successful join).
func (f *faults) assigned() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.groupErrs = 0
	if f.reason != "" && f.rejoined == 0 {
		f.rejoined = f.gen
	}
}

// generation returns the number of assignments received so far.
func (f *faults) generation() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// cycled notes a cycle that completed and had started after gen assignments:
// if the processor was back in the group by then, that cycle took its new
// assignment (restored), and the fault is over.
func (f *faults) cycled(gen int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fatal == nil && f.reason != "" && f.rejoined != 0 && f.rejoined <= gen {
		f.reason, f.since, f.rejoined = "", time.Time{}, 0
	}
}

// faultState is a snapshot of faults.
type faultState struct {
	reason   string    // why the processor is not ready; "" when nothing is wrong
	since    time.Time // when reason was set
	rejoined bool      // back in the group since: restoring its assignment
	fatal    error     // the fault the processor stops on
}

// state returns a snapshot.
func (f *faults) state() faultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return faultState{reason: f.reason, since: f.since, rejoined: f.rejoined != 0, fatal: f.fatal}
}

// groupWatch is the kgo hook that tells the processor of a lost group
// session.
type groupWatch struct{ p *Processor }

func (g groupWatch) OnGroupManageError(err error) { g.p.groupLost(err) }

// groupLost handles a group session kgo lost (its partitions are already
// revoked, through OnPartitionsLost): see the comment at the top.
func (p *Processor) groupLost(err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return // leaving the group: the session is being closed
	}
	p.ready.Store(false)
	switch {
	case errors.Is(err, kerr.FencedInstanceID):
		p.fail(p.errFenced(err))
	case refused(err):
		p.fail(fmt.Errorf("processor: no retry can fix this (credentials, permissions or certificate): %w", err))
	default:
		n := p.faults.groupLost(func(n int) string {
			return fmt.Sprintf("out of consumer group %s (%v); rejoining, attempt %d of %d", p.cfg.Group, err, n, maxGroupRejoins)
		})
		if n > maxGroupRejoins {
			p.fail(fmt.Errorf("processor: could not rejoin consumer group %s: %d group sessions in a row were lost without an assignment: %w",
				p.cfg.Group, n, err))
			return
		}
		p.log.Warn("lost the consumer group session; its partitions are revoked and kgo rejoins", zap.Error(err),
			zap.Int("attempt", n), zap.Int("max_attempts", maxGroupRejoins))
	}
}

// fail records a fatal fault and logs it, once: the loop stops on it.
func (p *Processor) fail(err error) {
	if !p.faults.setFatal(err) {
		return
	}
	p.ready.Store(false)
	var fe *fencedError
	if errors.As(err, &fe) {
		p.log.Error("fenced: another running process has this instance ID; stopping, since rejoining would fence it in turn",
			zap.String("instance_id", p.cfg.InstanceID), zap.String("group", p.cfg.Group),
			zap.String("transactional_id", p.g.transactionalID()), zap.String("fix", fixFenced), zap.Error(fe.cause))
		return
	}
	p.log.Error("processor stopping on a fatal error", zap.Error(err))
}

// fixFenced is what an operator does about a fenced instance.
const fixFenced = "give every instance its own kafka.instance_id (the Helm chart sets it to the pod name); " +
	"find the other process: a second deployment or release with the same group, or an old pod or host still running"

// fencedError is the fatal error of an instance whose ID another live
// process holds.
type fencedError struct {
	instanceID, group string
	cause             error
}

func (e *fencedError) Error() string {
	return fmt.Sprintf("processor: fenced: another running process uses kafka.instance_id %q in consumer group %q; fix: %s: %v",
		e.instanceID, e.group, fixFenced, e.cause)
}

func (e *fencedError) Unwrap() error { return e.cause }

func (p *Processor) errFenced(cause error) error {
	return &fencedError{instanceID: p.cfg.InstanceID, group: p.cfg.Group, cause: cause}
}

// producerFenced reports an error of a transactional producer whose epoch
// another producer with the same transactional ID (or the broker, aborting a
// transaction past its timeout) has bumped.
//
// INVALID_TXN_STATE counts too: ending a transaction after another producer
// initialised the same transactional ID answers that on Kafka 4.4 (seen
// once in six real-broker runs of TestSameInstanceID). If the group does
// not fence this instance, a new session starts, as for any lost session.
func producerFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTxnState)
}

// awaitGroupVerdict waits, after the producer was fenced, for the group to
// fence this instance too (then the loop's context is cancelled with the
// fatal fault), at most groupVerdictWait. It returns the fatal fault, if any.
func (p *Processor) awaitGroupVerdict(runCtx context.Context) error {
	if fatal := p.faults.state().fatal; fatal != nil {
		return fatal
	}
	p.ready.Store(false)
	p.faults.out(fmt.Sprintf("the transactional producer %s was fenced; waiting up to %s for the group to say whether another process has instance ID %q",
		p.g.transactionalID(), groupVerdictWait, p.cfg.InstanceID))
	p.log.Warn("the transactional producer was fenced; waiting for the group to say whether another process has this instance ID",
		zap.String("transactional_id", p.g.transactionalID()), zap.Duration("at_most", groupVerdictWait))
	select {
	case <-runCtx.Done():
	case <-time.After(groupVerdictWait):
	}
	return p.faults.state().fatal
}
