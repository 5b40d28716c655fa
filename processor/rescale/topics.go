package rescale

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/triggerd/triggerd/processor"
)

// createInputs creates the new topics of the co-partitioned inputs with M
// partitions and the old topics' own settings (retention, timestamps), so
// that their producers can switch before the old layout has drained.
func (r *run) createInputs(ctx context.Context) error {
	for _, in := range r.inputs {
		if in.raw {
			continue
		}
		configs, err := r.topicConfigs(ctx, in.old)
		if err != nil {
			return err
		}
		if err := r.waitCreated(ctx, in.new, r.m, configs); err != nil {
			return err
		}
	}
	return nil
}

// topicConfigs returns the settings set on topic itself (not the broker's
// defaults).
func (r *run) topicConfigs(ctx context.Context, topic string) (map[string]*string, error) {
	rcs, err := r.adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("rescale: describing topic %q: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return nil, fmt.Errorf("rescale: describing topic %q: %w", topic, err)
	}
	out := map[string]*string{}
	for _, c := range rc.Configs {
		if c.Source == kmsg.ConfigSourceDynamicTopicConfig && c.Value != nil && !c.Sensitive {
			out[c.Key] = c.Value
		}
	}
	return out, nil
}

// checkDrained refuses while the workers have not consumed a
// co-partitioned input to its end, or while a
// transaction is open on the changelog: what is not applied in the old
// layout would be lost in the new one.
func (r *run) checkDrained(ctx context.Context) error {
	var topics []string
	for _, in := range r.inputs {
		n, err := r.partitions(ctx, in.old)
		if err != nil {
			return err
		}
		// The internal topics' unconsumed records are carried
		// (carry.go).
		if n == r.n && !in.raw {
			topics = append(topics, in.old)
		}
	}
	var behind []string
	if len(topics) > 0 {
		ends, err := r.adm.ListCommittedOffsets(ctx, topics...)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return fmt.Errorf("rescale: end offsets of %v: %w", topics, err)
		}
		committed, err := r.fetchOffsets(ctx, r.cfg.Group)
		if err != nil {
			return fmt.Errorf("rescale: offsets of group %q: %w", r.cfg.Group, err)
		}
		ends.Each(func(e kadm.ListedOffset) {
			at := int64(0)
			if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.Err == nil && c.At > 0 {
				at = c.At
			}
			if at < e.Offset {
				behind = append(behind, fmt.Sprintf("%s[%d] committed %d of %d", e.Topic, e.Partition, at, e.Offset))
			}
		})
	}
	if len(behind) > 0 {
		sort.Strings(behind)
		return refused("the workers' group %q has not processed every input to its end (%s): "+
			"switch the producers of the co-partitioned inputs to the new topics (they exist now; see below), "+
			"start the deployment in the old layout until the group's lag on them is 0 (kafka-consumer-groups --describe), stop it and run the rescale again",
			r.cfg.Group, strings.Join(behind, ", "))
	}
	_, open, err := r.stableOffsets(ctx, r.src)
	if err != nil {
		return err
	}
	if len(open) > 0 {
		return refused("a transaction is open on the changelog %q (%s, still after %s): a processor stopped inside it; "+
			"the broker aborts it after the transaction timeout (kafka.transaction_timeout): run again then", r.src, strings.Join(open, ", "), markerPatience)
	}
	return nil
}

// createChangelog creates the new changelog, compacted, with M partitions.
// One that exists with another count is another rescale's.
func (r *run) createChangelog(ctx context.Context) error {
	n, err := r.partitions(ctx, r.dst)
	if err != nil {
		return err
	}
	if n != 0 && n != r.m {
		return refused("the new changelog %q exists with %d partitions: an interrupted rescale to %d; "+
			"run it again with --to %d, or delete the topic and the progress group %q to start over",
			r.dst, n, n, n, ProgressGroup(r.cfg))
	}
	compact := "compact"
	return r.waitCreated(ctx, r.dst, r.m, map[string]*string{"cleanup.policy": &compact})
}

// recreateInternal recreates the internal topics of the raw inputs with M
// partitions, once what the workers had not consumed is staged
// (carry.go); the raw offsets stay with the stage.
func (r *run) recreateInternal(ctx context.Context) error {
	for _, in := range r.inputs {
		if !in.raw {
			continue
		}
		n, err := r.partitions(ctx, in.old)
		if err != nil {
			return err
		}
		if n == r.m {
			continue
		}
		if n != 0 {
			// Committed offsets of a deleted topic would apply to the
			// new one of the same name.
			set := kadm.TopicsSet{}
			for p := range n {
				set.Add(in.old, p)
			}
			if _, err := r.adm.DeleteOffsets(ctx, r.cfg.Group, set); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
				return fmt.Errorf("rescale: deleting the offsets of %q in group %q: %w", in.old, r.cfg.Group, err)
			}
			resp, err := r.adm.DeleteTopic(ctx, in.old)
			if err == nil {
				err = resp.Err
			}
			if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("rescale: deleting the internal topic %q: %w", in.old, err)
			}
			// The broker deletes asynchronously: the name is free
			// once the metadata no longer shows the topic.
			if err := r.waitGone(ctx, in.old); err != nil {
				return err
			}
			r.say("deleted %s", in.old)
		}
		if err := r.waitCreated(ctx, in.old, r.m, processor.RepartitionTopicConfigs()); err != nil {
			return err
		}
		r.say("created %s with %d partitions", in.old, r.m)
	}
	return nil
}

// positionWorkers commits offset 0 of every new input partition in the
// workers' group: the new layout reads every record of the new topics,
// whatever start_from says.
func (r *run) positionWorkers(ctx context.Context) error {
	var offs kadm.Offsets
	for _, in := range r.inputs {
		for p := range r.m {
			offs.AddOffset(in.new, p, 0, -1)
		}
	}
	return r.commit(ctx, r.cfg.Group, offs)
}

// waitGone waits until the metadata no longer shows topic.
func (r *run) waitGone(ctx context.Context, topic string) error {
	for {
		n, err := r.partitions(ctx, topic)
		if err != nil || n == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
