package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

// output is where a cycle's records go: triggers, suppressions, dead
// letters and changelog records, all through the session's client (inside
// the cycle's transaction in exactly-once mode). The first produce error of
// a cycle is kept for the end of the cycle, which drops the cycle on it.
type output struct {
	log     *zap.Logger
	cfg     *Config
	cl      *kgo.Client // the session's; set when the session starts
	trigEnc *schemas.TriggerEncoder
	supEnc  *schemas.SuppressionEncoder
	// err is the cycle's first produce error, written by promises (any
	// goroutine) and taken by the end of the cycle.
	err atomic.Pointer[error]
}

// Header names on trigger records: the contract with downstream senders.
const (
	HeaderTriggerID = "trigger_id"
	HeaderRuleID    = "rule_id"
	HeaderKind      = "kind"
	HeaderChannel   = "channel"
)

// produce sends r within the current cycle.
func (o *output) produce(r *kgo.Record, promise func(*kgo.Record, error)) {
	o.cl.Produce(context.Background(), r, promise)
}

// promise is the completion of records whose offset does not matter.
func (o *output) promise(r *kgo.Record, err error) {
	if err != nil {
		o.failed(r, err)
	}
}

// failed keeps the cycle's first produce error, naming the record (never
// its content: it may hold customer data).
func (o *output) failed(r *kgo.Record, err error) {
	if errors.Is(err, kgo.ErrClientClosed) {
		// A closed client is an ended session, whose cycle ended
		// without committing. Records buffered in it fail as it
		// closes, possibly after the next session's first cycle has
		// begun, which must not be dropped for them (it was, once per
		// broker restart).
		return
	}
	err = fmt.Errorf("producing to %s partition %d (key %d bytes, value %d bytes): %w",
		r.Topic, r.Partition, len(r.Key), len(r.Value), err)
	if o.err.CompareAndSwap(nil, &err) {
		o.log.Warn("produce failed; the cycle is dropped", zap.Error(err))
	}
}

// takeErr returns the cycle's first produce error, if any, and clears it
// for the next cycle.
func (o *output) takeErr() *error { return o.err.Swap(nil) }

// triggerRecord builds a record about trigger tr, the one shape of every
// record on the trigger and suppressions topics (fired triggers, erased
// records, suppressions): keyed by customer ID, so that one customer's
// records stay in order, with the trigger's identity in headers, so that
// senders can route and deduplicate without decoding. extra headers follow
// those. A trigger without a channel (the erased record) has a null channel
// header.
func triggerRecord(topic string, tr *schemas.Trigger, value []byte, ts time.Time, extra ...kgo.RecordHeader) *kgo.Record {
	var channel []byte
	if tr.Channel != "" {
		channel = []byte(tr.Channel)
	}
	hs := make([]kgo.RecordHeader, 0, 4+len(extra))
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderTriggerID, Value: []byte(tr.ID)},
		kgo.RecordHeader{Key: HeaderRuleID, Value: []byte(tr.Rule)},
		kgo.RecordHeader{Key: HeaderKind, Value: []byte(tr.Kind)},
		kgo.RecordHeader{Key: HeaderChannel, Value: channel},
	)
	return &kgo.Record{Topic: topic, Key: []byte(tr.Customer), Value: value, Headers: append(hs, extra...), Timestamp: ts}
}

// trigger encodes tr and produces it to the trigger topic, stamped ts.
func (o *output) trigger(tr *schemas.Trigger, ts time.Time) error {
	val, err := o.trigEnc.Encode(nil, tr)
	if err != nil {
		return fmt.Errorf("processor: encoding trigger %s: %w", tr.ID, err)
	}
	o.produce(triggerRecord(o.cfg.Topics.Triggers, tr, val, ts), o.promise)
	return nil
}

// emit produces a trigger the rules fired, and notes it for the counts at
// commit.
func (w *worker) emit(tr *schemas.Trigger) error {
	if err := w.out.trigger(tr, tr.FiredAt); err != nil {
		return err
	}
	w.emitted = append(w.emitted, emitted{rule: tr.Rule, channel: tr.Channel, kind: tr.Kind})
	return nil
}

// emitted is a trigger of the cycle, counted when the cycle commits.
type emitted struct {
	rule    schemas.RuleID
	channel schemas.Channel
	kind    string
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

// deadLetterRecord is the dead letter of r, read from topic: its key and
// value unchanged, the reason, the error (at most 512 bytes) and where it came
// from in dlq_ headers, then extra, then r's own headers. The worker and the
// repartition stage both write these.
func deadLetterRecord(dlq, topic string, r *kgo.Record, reason, detail string, now time.Time, extra ...kgo.RecordHeader) *kgo.Record {
	if len(detail) > 512 {
		detail = detail[:512]
	}
	hs := make([]kgo.RecordHeader, 0, 6+len(extra)+len(r.Headers))
	hs = append(hs,
		kgo.RecordHeader{Key: "dlq_reason", Value: []byte(reason)},
		kgo.RecordHeader{Key: "dlq_error", Value: []byte(detail)},
		kgo.RecordHeader{Key: "dlq_source_topic", Value: []byte(topic)},
		kgo.RecordHeader{Key: "dlq_source_partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: "dlq_source_offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
		kgo.RecordHeader{Key: "dlq_source_timestamp", Value: []byte(r.Timestamp.UTC().Format(time.RFC3339Nano))},
	)
	hs = append(hs, extra...)
	hs = append(hs, r.Headers...)
	return &kgo.Record{Topic: dlq, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: now}
}
