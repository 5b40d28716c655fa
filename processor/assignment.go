package processor

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// The assignment: the group's rebalance callbacks record which partitions
// this member holds (under p.assignment), and the loop, after each poll,
// starts a worker for each new partition once its state is restored from
// the changelog (restore.go), and stops the workers of revoked ones.

// onAssigned is the group's callback for partitions assigned to this
// member (on kgo's goroutine, while the loop is between cycles or waits in a
// poll): it records them for the loop's next syncAssignment.
func (p *Processor) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	// After the assignment is recorded: the first cycle that starts after
	// this takes it, and ends a fault (faults.cycled).
	defer p.faults.assigned()
	a := &p.assignment
	a.Lock()
	defer a.Unlock()
	if a.parts == nil {
		a.parts = map[int32]map[string]bool{}
	}
	for t, ps := range assigned {
		for _, part := range ps {
			if part >= p.nparts {
				a.err = fmt.Errorf("processor: assigned %s partition %d but the inputs had %d partitions at start: "+
					"the partition count changed at run time, which moves customers between partitions; stop, "+
					"and repartition the state deliberately", t, part, p.nparts)
			}
			if a.parts[part] == nil {
				a.parts[part] = map[string]bool{}
			}
			a.parts[part][t] = true
		}
	}
}

// onRevoked is the group's callback for partitions revoked or lost.
func (p *Processor) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	a := &p.assignment
	a.Lock()
	defer a.Unlock()
	for t, ps := range revoked {
		for _, part := range ps {
			delete(a.parts[part], t)
			if len(a.parts[part]) == 0 {
				delete(a.parts, part)
			}
		}
	}
}

// syncAssignment starts workers for newly assigned partitions (restoring
// their state from the changelog first) and stops those of revoked ones.
// A revoked partition keeps its local state: if it comes back, the restore
// only replays what others wrote meanwhile.
func (p *Processor) syncAssignment(ctx context.Context) error {
	p.assignment.Lock()
	want, err := p.assignedLocked()
	p.assignment.Unlock()
	if err != nil {
		return err
	}
	wantSet := make(map[int32]bool, len(want))
	for _, part := range want {
		wantSet[part] = true
	}
	for part := range p.workers {
		if !wantSet[part] {
			p.setServing(part, false)
			delete(p.workers, part)
			// Its new owner exports them now: two instances must not
			// both report a partition's pending timers.
			p.m.forgetPartition(part)
			p.log.Info("partition revoked", zap.Int32("partition", part))
		}
	}
	var fresh []int32
	for _, part := range want {
		if p.workers[part] == nil {
			fresh = append(fresh, part)
		}
	}
	restored, err := p.restoreAll(ctx, fresh)
	if err != nil {
		return err
	}
	for i, part := range fresh {
		sp := restored[i]
		w, err := newWorker(p, part, sp)
		if err != nil {
			return err
		}
		p.workers[part] = w
		p.setServing(part, true)
		p.log.Info("partition assigned", zap.Int32("partition", part), zap.Int64("pending_timers", sp.PendingTimers()))
	}
	p.updatePending()
	return nil
}

// assignedLocked returns the partitions assigned for every input, in
// order. The caller holds p.assignment.
func (p *Processor) assignedLocked() ([]int32, error) {
	a := &p.assignment
	if a.err != nil {
		return nil, a.err
	}
	want := make([]int32, 0, len(a.parts))
	for part, topics := range a.parts {
		if len(topics) != len(p.cfg.Inputs()) {
			// The state of partition p serves every input's partition
			// p: half an assignment would process some of a customer's
			// events in one place and the rest in another.
			return nil, fmt.Errorf("processor: partition %d is assigned for %d of the %d input topics: a member of the group "+
				"does not assign by partition number (another program or release in the same group?)", part, len(topics), len(p.cfg.Inputs()))
		}
		want = append(want, part)
	}
	slices.Sort(want)
	return want, nil
}
