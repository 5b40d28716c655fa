package rescale

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// A transaction's end is not at once visible to readers: the coordinator
// answers EndTxn once it has logged its decision, then writes the markers
// to each partition. Until a partition's marker is written its last stable
// offset stays at the transaction's first record. A rescale run just after
// the deployment stopped can meet that moment; it is not the open
// transaction of a processor killed inside one (which lasts until the
// transaction timeout), so the rescale waits markerPatience for it before
// it refuses.

// markerPatience bounds the wait for the markers of a transaction that has
// just ended.
const markerPatience = 5 * time.Second

// stableOffsets returns the last stable offsets of topics, after waiting
// up to markerPatience for each partition's last stable offset to reach its
// end, and the partitions where it still has not ("topic[p] (last stable
// s, end e)", sorted): a transaction open on them.
func (r *run) stableOffsets(ctx context.Context, topics ...string) (kadm.ListedOffsets, []string, error) {
	deadline := time.Now().Add(markerPatience)
	said := false
	for {
		lso, err := r.adm.ListCommittedOffsets(ctx, topics...)
		if err == nil {
			err = lso.Error()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("rescale: last stable offsets of %v: %w", topics, err)
		}
		hw, err := r.adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			err = hw.Error()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("rescale: end offsets of %v: %w", topics, err)
		}
		var open []string
		lso.Each(func(l kadm.ListedOffset) {
			if h, ok := hw.Lookup(l.Topic, l.Partition); ok && h.Offset != l.Offset {
				open = append(open, fmt.Sprintf("%s[%d] (last stable %d, end %d)", l.Topic, l.Partition, l.Offset, h.Offset))
			}
		})
		sort.Strings(open)
		if len(open) == 0 || time.Now().After(deadline) {
			return lso, open, nil
		}
		if !said {
			r.say("a transaction is open on %s; waiting up to %s for its end markers", strings.Join(open, ", "), markerPatience)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
