package processor

import (
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// copartitionedBalancer assigns partitions by number: partition p of every
// input topic goes to the same member, because that member owns the state
// and the timers of the customers in p. It is cooperative (KIP-429) and
// sticky: a member keeps the partition numbers it owns up to its fair share,
// so adding an instance moves only the partitions the new one takes, and
// the others keep processing through the rebalance. franz-go's sticky
// balancers are cooperative but place each topic-partition on its own;
// range keeps numbers together but is eager (every rebalance stops every
// member) and not sticky.
//
// A partition that moves is taken from its owner in one rebalance and given
// to its new owner in the next (BalancePlan.AdjustCooperative), so no
// partition number is ever owned by two members at once.
//
// It also carries this member's advertisement (userData, see owner.go) in
// the metadata every member sends when it joins, which DescribeGroups
// returns to anyone who asks: that is how instances find each other's admin
// address without a membership protocol of their own.
type copartitionedBalancer struct {
	userData []byte
}

// copartitionedProtocol is the group protocol name. Every member must offer
// it for the group to use it; see Balancers in processor.go for rolling
// upgrades from range.
const copartitionedProtocol = "triggerd-copartitioned"

func (copartitionedBalancer) ProtocolName() string { return copartitionedProtocol }
func (copartitionedBalancer) IsCooperative() bool  { return true }

func (b copartitionedBalancer) JoinGroupMetadata(topics []string, owned map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	meta.UserData = b.userData
	meta.Generation = generation
	for _, t := range slices.Sorted(maps.Keys(owned)) {
		op := kmsg.NewConsumerMemberMetadataOwnedPartition()
		op.Topic = t
		op.Partitions = slices.Sorted(slices.Values(owned[t]))
		meta.OwnedPartitions = append(meta.OwnedPartitions, op)
	}
	return meta.AppendTo(nil)
}

func (copartitionedBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b copartitionedBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// Balance implements kgo.ConsumerBalancerBalance.
func (copartitionedBalancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	n := int32(-1)
	for t, count := range topics {
		if n >= 0 && count != n {
			cb.SetError(fmt.Errorf("processor: topics are not co-partitioned: %s has %d partitions, others %d", t, count, n))
			return nil
		}
		n = count
	}
	members := cb.Members()
	owned := make([][]int32, len(members))
	for i := range members {
		_, meta := cb.MemberAt(i)
		for _, op := range meta.OwnedPartitions {
			owned[i] = append(owned[i], op.Partitions...)
		}
	}
	plan := cb.NewPlan()
	for i, parts := range assignNumbers(max(n, 0), owned) {
		for t := range topics {
			plan.AddPartitions(&members[i], t, parts)
		}
	}
	plan.AdjustCooperative(cb)
	return plan
}

// assignNumbers spreads partition numbers 0..n-1 over the members (in the
// order given; owned[i] is what member i owns now, in any topic) so that
// each gets n/m or n/m+1 of them, keeping as many as possible where they
// are. The members that keep the most get the larger shares, which keeps
// moves to the minimum. It is deterministic: every leader computes the same
// plan from the same input.
func assignNumbers(n int32, owned [][]int32) [][]int32 {
	m := len(owned)
	out := make([][]int32, m)
	if m == 0 {
		return out
	}
	// Who owns each number now: the first member (in order) to claim it.
	// A number claimed twice (a member that has not yet seen its revoke)
	// stays with the first claimant.
	owner := make([]int, n)
	for p := range owner {
		owner[p] = -1
	}
	keepable := make([]int, m)
	for i, ps := range owned {
		for _, p := range ps {
			if p >= 0 && p < n && owner[p] < 0 {
				owner[p] = i
				keepable[i]++
			}
		}
	}
	// Shares: n/m each, one more for the n%m members that own the most.
	base, extra := int(n)/m, int(n)%m
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return keepable[b] - keepable[a] })
	share := make([]int, m)
	for rank, i := range order {
		share[i] = base
		if rank < extra {
			share[i]++
		}
	}
	// Keep owned numbers up to each share, lowest numbers first.
	var free []int32
	for p := int32(0); p < n; p++ {
		if i := owner[p]; i >= 0 && len(out[i]) < share[i] {
			out[i] = append(out[i], p)
			continue
		}
		free = append(free, p)
	}
	// Hand out the rest to the members below their share, in order.
	for i := range out {
		for len(out[i]) < share[i] {
			out[i] = append(out[i], free[0])
			free = free[1:]
		}
		slices.Sort(out[i])
	}
	return out
}
