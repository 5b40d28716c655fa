package processor

import (
	"context"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// How often the broker is asked for the inputs' end offsets (see
// checkCaughtUp): often while records wait for an idle input's grace, so
// that they wait about IdleGrace and not a second more; else once a second,
// which is enough for the watermark of idle inputs to follow the wall clock.
const (
	caughtUpCheckIdle    = time.Second
	caughtUpCheckMinimum = 10 * time.Millisecond
	// Without IdleAdvance the check only finds inputs that hold records
	// back for good (stallWarnAfter).
	caughtUpCheckNoAdvance = 10 * time.Second
	stallWarnAfter         = 30 * time.Second
	stallWarnEvery         = time.Minute
)

// caughtUpEvery returns how long after the last end-offset check the next
// is due.
func (p *Processor) caughtUpEvery() time.Duration {
	if !p.cfg.IdleAdvance {
		return caughtUpCheckNoAdvance
	}
	for _, w := range p.workers {
		if w.waitsOnGrace() {
			return max(p.cfg.IdleGrace/4, caughtUpCheckMinimum)
		}
	}
	return caughtUpCheckIdle
}

// pollWait is how long a poll may wait for records: the tick, or less when
// records wait for an idle input's grace and the next end-offset check
// comes sooner.
func (p *Processor) pollWait() time.Duration {
	return min(p.cfg.Tick, max(p.caughtUpEvery(), caughtUpCheckMinimum))
}

// checkCaughtUp asks the broker, when it is due, for the end offsets (the
// last stable offsets: the inputs are read committed) of the inputs and
// notes, for every assigned input partition whose records up to that end
// have all been polled, the wall time the question was asked
// (input.caughtUpAt): every record written before then has been seen. This
// is the broker's word, not a guess from an empty fetch; see eventtime.go
// for what the progress makes of it.
func (p *Processor) checkCaughtUp(ctx context.Context, now time.Time) {
	if len(p.workers) == 0 || now.Sub(p.lastCaughtUpCheck) < p.caughtUpEvery() {
		return
	}
	p.lastCaughtUpCheck = now
	asked := now.UnixMilli()
	reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rawDone := p.rawCaughtUp(reqCtx) // internal topics of raw inputs: repartition_caughtup.go
	ends, err := p.adm.ListCommittedOffsets(reqCtx, p.cfg.Inputs()...)
	if err != nil && ctx.Err() != nil {
		return // shutting down: nothing to warn of
	}
	if err != nil {
		p.log.Warn("listing the inputs' end offsets (to tell idle inputs from lagging ones)", zap.Error(err))
		p.brokersAway(now)
		return
	}
	committed, polled := p.cl.CommittedOffsets(), p.cl.UncommittedOffsets()
	for _, w := range p.workers {
		for i := range w.inputs {
			in := &w.inputs[i]
			end, ok := ends.Lookup(in.topic, w.id)
			if !ok || end.Err != nil {
				continue
			}
			pos, known := int64(-1), false
			if o, ok := polled[in.topic][w.id]; ok {
				pos, known = o.Offset, true
			}
			if o, ok := committed[in.topic][w.id]; ok && o.Offset > pos {
				pos, known = o.Offset, true
			}
			var caughtUp bool
			switch {
			case known:
				caughtUp = pos >= end.Offset
			case p.cfg.StartFrom == "latest":
				// No position yet: the group starts this
				// partition at its end.
				caughtUp = true
			default:
				caughtUp = end.Offset == 0
			}
			if in.raw != nil {
				st := rawDone[in.topic]
				caughtUp = caughtUp && st.caughtUp
				if st.parts > 0 {
					in.raw.setParts(st.parts)
				}
			}
			if caughtUp && asked >= w.creditFrom {
				in.caughtUpAt = max(in.caughtUpAt, asked)
			}
			if p.trace != "" {
				w.log.Info("trace caught-up check", zap.String("topic", in.topic), zap.Int64("pos", pos), zap.Int64("end", end.Offset),
					zap.Bool("caught_up", caughtUp), zap.Int64("asked", asked), zap.Int("pending", in.pending()))
			}
		}
		w.warnIfStalled(now)
	}
}

// brokersAway notes that the brokers could not be reached at now: no idle
// input counts as caught up until ReconnectGrace after that, for the
// producers to deliver what they buffered meanwhile.
func (p *Processor) brokersAway(now time.Time) {
	for _, w := range p.workers {
		w.creditFrom = max(w.creditFrom, now.Add(p.cfg.ReconnectGrace).UnixMilli())
	}
}

// warnIfStalled says, at most once a minute, that records have waited for
// long on an input that has nothing to deliver: without IdleAdvance an
// input with no records holds the event time of its partition, and nothing
// else shows it (the input offsets are committed: lag 0).
func (w *worker) warnIfStalled(now time.Time) {
	waiting := 0
	for i := range w.inputs {
		waiting += w.inputs[i].pending()
	}
	w.waiting.Set(float64(waiting))
	if waiting == 0 || w.cfg.IdleAdvance {
		w.stalledSince = time.Time{}
		return
	}
	if w.stalledSince.IsZero() {
		w.stalledSince = now
	}
	if now.Sub(w.stalledSince) < stallWarnAfter || now.Sub(w.stallWarned) < stallWarnEvery {
		return
	}
	w.stallWarned = now
	for i := range w.inputs {
		in := &w.inputs[i]
		if in.pending() > 0 {
			continue
		}
		w.log.Warn("records wait for an input that has no records to deliver: with idle_advance off an empty input holds the "+
			"event time of its partition; write a heartbeat event to it, or turn idle_advance on",
			zap.String("holding_topic", in.topic), zap.Int("records_waiting", waiting),
			zap.Duration("waiting_for", now.Sub(w.stalledSince).Truncate(time.Second)),
			zap.String("progress", progressString(in.maxTs)))
	}
}

func progressString(ms int64) string {
	if ms == noTime {
		return "none: no record seen"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339) + " (" + strconv.FormatInt(ms, 10) + ")"
}
