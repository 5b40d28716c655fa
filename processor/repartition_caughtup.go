package processor

import (
	"context"
	"slices"

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
// raw partition. It returns nil when no input is raw.
func (p *Processor) rawCaughtUp(ctx context.Context) map[string]bool {
	raw := p.cfg.RawInputs()
	if len(raw) == 0 {
		return nil
	}
	done := map[string]bool{}
	ends, err := p.adm.ListCommittedOffsets(ctx, raw...)
	if err != nil {
		p.log.Warn("listing the raw inputs' end offsets (to tell idle inputs from lagging ones)", zap.Error(err))
		return done
	}
	committed, err := p.adm.FetchOffsets(ctx, p.cfg.RepartitionGroup())
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
		done[p.cfg.RepartitionTopic(t)] = ok && len(ends[t]) > 0
	}
	return done
}

// sortRawQueue keeps the queue of a raw input's internal topic in event-time
// order (stably: offset order among equal times). The internal topic merges
// raw partitions by arrival, so a record may come after a later-stamped
// one; the merge across inputs takes each input's head as its earliest.
func sortRawQueue(cfg *Config, in *input) {
	if len(cfg.Repartition.Inputs) == 0 || !cfg.isInternal(in.topic) {
		return
	}
	slices.SortStableFunc(in.queue[in.head:], func(a, b queued) int {
		switch {
		case a.ts < b.ts:
			return -1
		case a.ts > b.ts:
			return 1
		}
		return 0
	})
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
