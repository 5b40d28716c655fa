package processor

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// guarantee is the delivery guarantee's part of the cycle: how the Kafka
// session starts and polls, how a cycle's output begins and ends, and what
// the workers and the restore do differently without a transaction.
// exactlyOnce (exactlyonce.go) commits a cycle's output and its consumed
// offsets in one Kafka transaction; atLeastOnce (atleastonce.go) has none:
// the state's offsets say where the inputs resume, and each changelog batch
// is closed by its offsets record.
type guarantee interface {
	// start opens the session's client on the group consumer's options.
	start(ctx context.Context, opts []kgo.Opt) (*kgo.Client, error)
	// close closes the session's client.
	close()
	// poll takes up to max records, waiting until ctx is done for the
	// first.
	poll(ctx context.Context, max int) kgo.Fetches
	// begin starts a cycle's output.
	begin() error
	// endBatch ends a cycle of the active workers: it makes the output
	// durable and applies the workers' Pebble batches when the cycle and
	// every produce succeeded, and drops them otherwise. It returns a
	// session error (the session is unusable: Run starts a new one) apart
	// from a fatal one.
	endBatch(ctx context.Context, active []*worker, cycleErr error) (sessErr, fatal error)
	// unapplied returns the polled records of an input whose next
	// expected offset is next that its state does not hold yet.
	unapplied(recs []*kgo.Record, next int64) []*kgo.Record
	// closesBatches reports whether a changelog batch counts only once
	// its closing offsets record is in the changelog: every batch then
	// ends with one (worker.runCycle), and the restore applies only closed
	// batches (restore.go).
	closesBatches() bool
	// produceChangelog produces w's changelog record r, or holds it for
	// the end of the cycle.
	produceChangelog(w *worker, r *kgo.Record)
	// transactionalID is the producer's transactional ID, "" for none.
	transactionalID() string
}

// newGuarantee returns the implementation of cfg's guarantee.
func newGuarantee(p *Processor) guarantee {
	if p.cfg.Guarantee == AtLeastOnce {
		return &atLeastOnce{p: p}
	}
	return &exactlyOnce{p: p}
}
