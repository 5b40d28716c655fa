package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

// decoded is an admitted record's event, kept from admission to handling so
// that a record is decoded once. Its Reuse goes with its Event.
type decoded struct {
	ev    schemas.Event
	reuse schemas.Reuse
}

// admit decodes and validates the cycle's polled records of input in and
// queues the good ones. A record is validated before it can move anything:
// a bad one is dead-lettered here and never touches the input's progress,
// the watermark or the state, so one bad record cannot fire anyone's
// timers. Control records (transaction markers) only move the offset.
// arrived is the wall time the records were polled (unix ms).
func (w *worker) admit(in *input, now time.Time, arrived int64) error {
	for _, r := range in.recs {
		// Offsets are not contiguous on transactional or compacted
		// inputs, so the check is a diagnostic for tests only.
		if w.trace != "" && in.next >= 0 && r.Offset != in.next && !r.Attrs.IsControl() {
			w.log.Warn("input offset gap", zap.String("topic", in.topic), zap.Int64("want", in.next), zap.Int64("got", r.Offset))
		}
		in.next = r.Offset + 1
		if r.Attrs.IsControl() {
			continue
		}
		in.consumed++
		d := w.takeDecoded()
		ok, err := w.validate(in, r, d, now)
		if err != nil {
			w.putDecoded(d)
			return err
		}
		if !ok {
			w.putDecoded(d)
			continue
		}
		ts := d.ev.Time.UnixMilli()
		late := w.late(ts)
		if late {
			in.lateThisCycle++
		}
		in.enqueue(queued{r: r, ts: ts, arrived: arrived, ev: d, late: late}) // repartition_order.go
		in.maxTs = max(in.maxTs, ts)
	}
	return nil
}

// validate decodes r into d and checks what the rules cannot be trusted
// to: the key is the customer ID, the record is on that customer's
// partition (partitioner_misrouted.go), and the event time is within the
// accepted range of the wall clock. A bad record is dead-lettered (ok
// false, no error); an error is not the record's fault (the schema
// registry did not answer): the cycle is retried.
func (w *worker) validate(in *input, r *kgo.Record, d *decoded, now time.Time) (ok bool, err error) {
	if err := in.dec.DecodeReusing(context.Background(), r.Value, &d.ev, &d.reuse); err != nil {
		var de *schemas.DecodeError
		if !errors.As(err, &de) {
			return false, &retryableError{fmt.Errorf("decoding %s offset %d: %w", in.topic, r.Offset, err)}
		}
		w.deadLetter(in, r, de.Reason, err.Error(), now)
		return false, nil
	}
	ev := &d.ev
	if string(r.Key) != string(ev.Customer) {
		w.deadLetter(in, r, "key_mismatch", "record key "+strconv.Quote(string(r.Key))+" is not the customer ID "+strconv.Quote(string(ev.Customer)), now)
		return false, nil
	}
	if w.misrouted(in, r, now) {
		return false, nil
	}
	if ev.Time.Before(now.Add(-w.cfg.MaxEventAge)) || ev.Time.After(now.Add(w.cfg.MaxEventAhead)) {
		w.deadLetter(in, r, "absurd_timestamp", "event_time "+ev.Time.UTC().Format(time.RFC3339)+
			" is outside the accepted range (max_event_age "+w.cfg.MaxEventAge.String()+
			", max_event_ahead "+w.cfg.MaxEventAhead.String()+" of the wall clock)", now)
		return false, nil
	}
	return true, nil
}

// decodeHeld decodes a record that was held in the state (after a restore
// or an abort the queues are rebuilt from raw records). It was valid when
// it was admitted; should it no longer decode, it is dead-lettered.
func (w *worker) decodeHeld(in *input, r *kgo.Record, now time.Time) (*decoded, error) {
	d := w.takeDecoded()
	ok, err := w.validate(in, r, d, now)
	if err != nil || !ok {
		w.putDecoded(d)
		return nil, err
	}
	return d, nil
}

func (w *worker) takeDecoded() *decoded {
	if n := len(w.free); n > 0 {
		d := w.free[n-1]
		w.free[n-1] = nil // the array is scanned whole: no stale pointer
		w.free = w.free[:n-1]
		return d
	}
	return new(decoded)
}

// maxFreeDecoded bounds the decoded events a worker keeps for reuse: more
// than a live cycle's records of one partition. Unbounded, the free list
// kept every event of the largest cycle (a drain's take up to poll_records
// records), property maps and all, for good; the GC scanned them at every
// cycle, and with the heap held at GOMEMLIMIT it ran nearly without pause:
// 44% of the processor's CPU in the live phase at 10M customers.
const maxFreeDecoded = 256

// putDecoded gives d back for the next record, or to the GC past
// maxFreeDecoded. Nothing keeps an event's Properties map past its handling
// (see schemas.Reuse).
func (w *worker) putDecoded(d *decoded) {
	if len(w.free) < maxFreeDecoded {
		w.free = append(w.free, d)
	}
}
