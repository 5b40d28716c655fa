package processor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"
)

// A restore reads its changelog partition read_committed, so it stops at
// the partition's last stable offset (LSO): the first offset of the oldest
// transaction still open on it. What follows finds that transaction and
// says whose it is and what ends it, from the admin APIs of KIP-664
// (DescribeProducers, ListTransactions, DescribeTransactions; Kafka 3.0+).

// openTxn is a transaction open on a changelog partition, as the partition
// leader sees it, with what its transaction coordinator knows of it.
type openTxn struct {
	producerID  int64
	epoch       int16
	startOffset int64     // its first offset on the partition: the LSO when it is the oldest
	lastWrite   time.Time // its producer's last write to the partition (the broker's clock)

	txnID string // the transactional ID whose producer ID it is now; "" if none
	// The coordinator's current transaction for txnID.
	state   string        // Ongoing, PrepareCommit, PrepareAbort, Empty, CompleteCommit...
	started time.Time     // when it began (zero if unknown)
	timeout time.Duration // its transaction timeout
	covers  bool          // it includes this partition: the coordinator will end it here
	unknown error         // the coordinator's view could not be had: neither open nor hanging is known
}

// hanging reports a transaction that no coordinator will end on this
// partition (KIP-664's hanging transaction): the coordinator has no open
// transaction for its producer, or one that does not include the partition.
// Only an abort written by an operator (or the producer's next
// initialisation, if it still exists and is not the coordinator's) ends it.
func (o *openTxn) hanging() bool {
	if o.unknown != nil {
		return false
	}
	switch o.state {
	case "Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence":
		return !o.covers
	}
	return true
}

// deadline is when the coordinator aborts an open transaction that its
// producer leaves open: its start plus its timeout (the coordinator checks
// every transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s by
// default, so the abort comes up to that much later).
func (o *openTxn) deadline() time.Time {
	if o.started.IsZero() || o.timeout <= 0 {
		return time.Time{}
	}
	return o.started.Add(o.timeout)
}

// owner says whose transactional ID it is: this instance's own, another
// instance of the group (its ID is group+"-"+instance_id), or a stranger.
func (p *Processor) owner(txnID string) (who, instance string) {
	switch {
	case txnID == "":
		return "unknown", ""
	case txnID == p.g.transactionalID():
		return "self", p.cfg.InstanceID
	case strings.HasPrefix(txnID, p.cfg.Group+"-"):
		return "peer", strings.TrimPrefix(txnID, p.cfg.Group+"-")
	}
	return "stranger", ""
}

// openTxns lists the transactions open on the changelog partition, oldest
// first, with their coordinators' view.
func (p *Processor) openTxns(ctx context.Context, part int32) ([]openTxn, error) {
	topic := p.cfg.Topics.Changelog
	described, err := p.adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {part: {}}})
	if err != nil {
		return nil, fmt.Errorf("describing the producers of %s partition %d: %w", topic, part, err)
	}
	var open []openTxn
	var pids []int64
	var perr error
	described.EachPartition(func(dp kadm.DescribedProducersPartition) {
		if dp.Topic != topic || dp.Partition != part {
			return
		}
		if dp.Err != nil {
			perr = dp.Err
		}
		dp.ActiveProducers.Each(func(d kadm.DescribedProducer) {
			if d.CurrentTxnStartOffset < 0 {
				return
			}
			open = append(open, openTxn{producerID: d.ProducerID, epoch: d.ProducerEpoch,
				startOffset: d.CurrentTxnStartOffset, lastWrite: time.UnixMilli(d.LastTimestamp)})
			pids = append(pids, d.ProducerID)
		})
	})
	if perr != nil {
		return nil, fmt.Errorf("describing the producers of %s partition %d: %w", topic, part, perr)
	}
	sort.Slice(open, func(i, j int) bool { return open[i].startOffset < open[j].startOffset })
	if len(open) == 0 {
		return nil, nil
	}
	// Which transactional IDs own these producer IDs now, and what their
	// coordinators say. A failure here leaves the owner unknown.
	listed, err := p.adm.ListTransactions(ctx, pids, nil)
	if err != nil && len(listed) == 0 {
		err = fmt.Errorf("listing the transactions of producer IDs %v: %w", pids, err)
		for i := range open {
			open[i].unknown = err
		}
		return open, err
	}
	byPID := map[int64]string{}
	var ids []string
	listed.Each(func(l kadm.ListedTransaction) {
		byPID[l.ProducerID] = l.TxnID
		ids = append(ids, l.TxnID)
	})
	var txns kadm.DescribedTransactions
	var derr error
	if len(ids) > 0 {
		if txns, err = p.adm.DescribeTransactions(ctx, ids...); err != nil {
			derr = fmt.Errorf("describing transactions %v: %w", ids, err)
		}
	}
	for i := range open {
		o := &open[i]
		o.txnID = byPID[o.producerID]
		if o.txnID == "" {
			continue // no transactional ID has it: hanging
		}
		d, ok := txns[o.txnID]
		switch {
		case ok && d.Err != nil:
			o.unknown = fmt.Errorf("describing transaction %s: %w", o.txnID, d.Err)
			continue
		case !ok:
			o.unknown = derr
			if o.unknown == nil {
				o.unknown = fmt.Errorf("transaction %s not described", o.txnID)
			}
			continue
		case d.ProducerID != o.producerID:
			continue // the transactional ID has moved on to another producer ID: hanging
		}
		o.state = d.State
		o.timeout = time.Duration(d.TimeoutMillis) * time.Millisecond
		if d.StartTimestamp > 0 {
			o.started = time.UnixMilli(d.StartTimestamp)
		}
		_, o.covers = d.Topics[p.cfg.Topics.Changelog][part]
	}
	return open, derr
}

// abortCommands are the operator's commands (Kafka's kafka-transactions.sh,
// KIP-664) that find the partition's hanging transactions and abort the one
// starting at offset start.
func (p *Processor) abortCommands(part int32, start int64) (abort, find string) {
	base := "kafka-transactions.sh --bootstrap-server " + strings.Join(p.cfg.Brokers, ",")
	if p.cfg.TLS.Enabled || p.cfg.SASL.Mechanism != "" {
		base += " --command-config CLIENT_PROPERTIES" // the processor's TLS and SASL settings, as Kafka client properties
	}
	abort = fmt.Sprintf("%s abort --topic %s --partition %d --start-offset %d", base, p.cfg.Topics.Changelog, part, start)
	find = fmt.Sprintf("%s find-hanging --topic %s --partition %d", base, p.cfg.Topics.Changelog, part)
	return abort, find
}

// stallAction is what the processor does about the transaction holding a
// restore, in words for the log, and whether it starts a new Kafka session
// now (its own transaction outlived the transaction timeout: the new
// session's producer initialisation fences it, which makes the coordinator
// abort it).
func (p *Processor) stallAction(o *openTxn, waited time.Duration, now time.Time) (action string, newSession bool) {
	who, instance := p.owner(o.txnID)
	if o.unknown != nil {
		return "its coordinator could not be asked about it (" + o.unknown.Error() + "); the restore waits and asks again", false
	}
	if o.hanging() {
		what := fmt.Sprintf("no transaction coordinator will end it (the coordinator's transaction for its producer is %s and does not include this partition): a hanging transaction, whose marker was lost "+
			"(a coordinator completing a transaction while the partition had no leader, as after a broker crash, drops its marker); "+
			"if that transaction committed elsewhere, aborting it here drops these records: read them first", o.state)
		switch {
		case o.txnID == "":
			what = "no transactional ID has its producer ID any more, so no coordinator will end it: a hanging transaction"
		case o.state == "":
			what = "its transactional ID has moved on to another producer ID, so no coordinator will end it: a hanging transaction"
		}
		return what + "; the restore waits until an operator aborts it (abort_command, after checking it with find_command)", false
	}
	left := "its producer ends it"
	if dl := o.deadline(); !dl.IsZero() {
		left = fmt.Sprintf("its producer ends it or its coordinator aborts it at its timeout, %s (in %s)",
			dl.UTC().Format(time.RFC3339), max(dl.Sub(now), 0).Round(time.Second))
	}
	switch who {
	case "self":
		if waited >= p.cfg.TransactionTimeout {
			return "this instance's own transaction is still open after the transaction timeout: starting a new Kafka session, whose producer initialisation fences it and has the coordinator abort it", true
		}
		return "this instance's own transaction from before its producer was initialised (which fences it): the restore waits for the coordinator to abort it; " + left, false
	case "peer":
		return fmt.Sprintf("a transaction of instance %q of the group (it owned the partition before, or still does while the rebalance ends): the restore waits until %s, or instance %q restarts; if that instance is gone for good and this outlives the timeout, abort it (abort_command)", instance, left, instance), false
	}
	return "a transaction of a transactional ID that is not this group's: something else writes to the changelog; the restore waits until " + left + ", or an operator aborts it (abort_command)", false
}

// explainStall logs why a restore gets no records, and returns a session
// error when the processor acts by starting a new session (see
// stallAction). Any other wait is logged and continues: the records it
// waits for are the state's only copy.
func (p *Processor) explainStall(ctx context.Context, part int32, last, end int64, waited time.Duration, log *stallLog) error {
	reqCtx, cancel := context.WithTimeout(ctx, restoreStallCheck)
	defer cancel()
	lso := int64(-1)
	stable, lsoErr := p.adm.ListCommittedOffsets(reqCtx, p.cfg.Topics.Changelog)
	if o, ok := stable.Lookup(p.cfg.Topics.Changelog, part); lsoErr == nil && ok && o.Err == nil {
		lso = o.Offset
	}
	fields := []zap.Field{zap.Int32("partition", part), zap.Int64("restored_to", last), zap.Int64("last_stable_offset", lso),
		zap.Int64("end", end), zap.Duration("waited", waited.Round(time.Second)), zap.Duration("transaction_timeout", p.cfg.TransactionTimeout)}
	if lsoErr != nil {
		fields = append(fields, zap.NamedError("lso_error", lsoErr))
	}
	if lso >= 0 && lso > last+1 {
		log.warn(p, "restore waiting for the changelog: records up to the last stable offset are committed but a fetch brought none (the broker is slow or was unreachable)", "slow", fields...)
		return nil
	}
	open, err := p.openTxns(reqCtx, part)
	if err != nil {
		fields = append(fields, zap.NamedError("describe_error", err))
	}
	if len(open) == 0 {
		log.warn(p, "restore waiting for the changelog: a read_committed fetch stops at the last stable offset, but no open transaction was found on the partition (the broker may still be loading it)", "none", fields...)
		return nil
	}
	o := &open[0]
	who, instance := p.owner(o.txnID)
	action, newSession := p.stallAction(o, waited, time.Now())
	abort, find := p.abortCommands(part, o.startOffset)
	fields = append(fields,
		zap.Int64("producer_id", o.producerID), zap.Int16("producer_epoch", o.epoch), zap.Int64("transaction_start_offset", o.startOffset),
		zap.Time("producer_last_write", o.lastWrite), zap.String("transactional_id", o.txnID), zap.String("owner", who),
		zap.String("coordinator_state", o.state), zap.Bool("hanging", o.hanging()), zap.String("action", action),
		zap.String("abort_command", abort), zap.String("find_command", find), zap.Int("open_transactions", len(open)))
	if instance != "" && who == "peer" {
		fields = append(fields, zap.String("owner_instance_id", instance))
	}
	if !o.started.IsZero() {
		fields = append(fields, zap.Time("transaction_started", o.started), zap.Duration("transaction_open_for", time.Since(o.started).Round(time.Second)),
			zap.Duration("its_transaction_timeout", o.timeout))
	}
	key := fmt.Sprintf("%d/%d/%d/%s/%v", o.producerID, o.epoch, o.startOffset, o.state, o.hanging())
	log.warn(p, "restore waiting for the changelog: an open transaction holds its last stable offset, where a read_committed fetch stops", key, fields...)
	if newSession {
		return &sessionError{fmt.Errorf("processor: restoring partition %d: this instance's own transaction (producer ID %d, epoch %d) holds the changelog's last stable offset at %d after %s: a new session fences it",
			part, o.producerID, o.epoch, o.startOffset, waited.Round(time.Second))}
	}
	return nil
}

// stallLog rate-limits a stalled restore's explanation: it logs a new
// explanation at once and the same one again every stallLogEvery.
type stallLog struct {
	key  string
	last time.Time
}

// stallLogEvery is how often a restore that waits for the same reason says
// so again.
const stallLogEvery = 30 * time.Second

func (l *stallLog) warn(p *Processor, msg, key string, fields ...zap.Field) {
	if key == l.key && time.Since(l.last) < stallLogEvery {
		return
	}
	l.key, l.last = key, time.Now()
	p.log.Warn(msg, fields...)
}
