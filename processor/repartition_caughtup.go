package processor

import (
	"context"
	"errors"

	"go.uber.org/zap"
)

// rawCaughtUp tells, for the caught-up check of the workers' inputs
// (caughtup.go), which internal topics have everything of their raw topic:
// a worker that has polled an internal topic to its end has seen every
// record written to it before the check, but a raw record written before
// the check may still be in the stage. So an internal topic counts as
// caught up at the time asked only if, asked first, the stage's group had
// committed (with the records it wrote: one transaction, or after the
// flush at least once) every raw partition up to its last stable offset.
// That is the broker's word and holds whichever instance repartitions which
// raw partition. It also gives each raw topic's partition count, which the
// workers' event-time bound of the internal topic needs
// (repartition_order.go). It returns nil when no input is raw; an internal
// topic missing from the answer (the broker did not answer) is not caught up.
func (p *Processor) rawCaughtUp(ctx context.Context) map[string]rawStatus {
	raw := p.cfg.RawInputs()
	if len(raw) == 0 {
		return nil
	}
	done := map[string]rawStatus{}
	ends, err := p.adm.ListCommittedOffsets(ctx, raw...)
	// ctx is the check's: cancelled when the processor stops (nothing
	// to warn of), past its deadline when the broker is slow (warned).
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return done
	}
	if err != nil {
		p.log.Warn("listing the raw inputs' end offsets (to tell idle inputs from lagging ones)", zap.Error(err))
		return done
	}
	committed, err := p.adm.FetchOffsets(ctx, p.cfg.RepartitionGroup())
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return done
	}
	if err != nil {
		p.log.Warn("fetching the repartition stage's offsets (to tell idle inputs from lagging ones)", zap.Error(err))
		return done
	}
	for _, t := range raw {
		ok := true
		for _, end := range ends[t] {
			if end.Err != nil {
				ok = false
				break
			}
			c, found := committed.Lookup(t, end.Partition)
			switch {
			case found && c.Err == nil:
				ok = ok && c.At >= end.Offset
			case p.cfg.StartFrom == "latest":
				// Never committed: the stage starts this partition
				// at its end.
			default:
				ok = ok && end.Offset == 0
			}
		}
		done[p.cfg.RepartitionTopic(t)] = rawStatus{caughtUp: ok && len(ends[t]) > 0, parts: len(ends[t])}
	}
	return done
}

// rawStatus is what the caught-up check learnt of a raw topic, by its
// internal topic.
type rawStatus struct {
	caughtUp bool // the stage had committed every raw partition to its end
	parts    int  // the raw topic's partition count; 0 not known
}

// isInternal reports whether topic is the internal topic of a raw input.
func (c *Config) isInternal(topic string) bool {
	for _, t := range c.RawInputs() {
		if c.RepartitionTopic(t) == topic {
			return true
		}
	}
	return false
}
