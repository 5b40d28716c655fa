package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"
)

// repartitionTopicConfigs are the internal topics' settings: they keep
// records for good (the raw topic's retention decides what is kept; the
// workers' group commits what they read) and accept any record timestamp,
// since the stage copies the raw records' timestamps and an absurd one is
// the workers' to dead-letter (absurd_timestamp), not the broker's to
// refuse.
func repartitionTopicConfigs() map[string]*string {
	forever, anyTime := "-1", "9223372036854775807"
	return map[string]*string{
		"retention.ms":                    &forever,
		"message.timestamp.before.max.ms": &anyTime,
		"message.timestamp.after.max.ms":  &anyTime,
	}
}

// prepareRepartition checks the raw inputs and their internal topics before
// prepareTopics checks the inputs the workers consume (the internal topics
// among them): every raw input exists, and a missing internal topic is
// created (create_topics) with the processor's partition count:
// repartition.partitions, or that of the co-partitioned inputs. Without
// create_topics a missing one is an error that names it. An internal topic
// with another partition count is reported by prepareTopics, as for any
// input.
func prepareRepartition(ctx context.Context, adm *kadm.Client, cfg *Config, log *zap.Logger) error {
	raw := cfg.RawInputs()
	if len(raw) == 0 {
		return nil
	}
	var internal, copartitioned []string
	for i, t := range cfg.declaredInputs() {
		if cfg.isRaw(inputKeys[i]) {
			internal = append(internal, cfg.RepartitionTopic(t))
		} else {
			copartitioned = append(copartitioned, t)
		}
	}
	details, err := adm.ListTopics(ctx, append(append(append([]string(nil), raw...), internal...), copartitioned...)...)
	if err != nil {
		return &sessionError{fmt.Errorf("processor: listing topics: %w", err)}
	}
	var errs []error
	for _, t := range raw {
		if _, ok := existing(details, t); !ok {
			errs = append(errs, fmt.Errorf("processor: raw input topic %q does not exist (repartition.inputs)", t))
		}
	}
	n := cfg.Repartition.Partitions
	for _, t := range copartitioned {
		if d, ok := existing(details, t); ok && n == 0 {
			n = int32(len(d.Partitions))
		}
	}
	var missing []string
	for _, t := range internal {
		if _, ok := existing(details, t); !ok {
			missing = append(missing, t)
		}
	}
	switch {
	case len(missing) == 0 || len(errs) > 0:
		return errors.Join(errs...)
	case !cfg.CreateTopics:
		return fmt.Errorf("processor: the internal topics %v of the raw inputs do not exist and create_topics is off: "+
			"create them with the processor's partition count, or turn create_topics on", missing)
	case n == 0:
		return nil // no co-partitioned input exists: prepareTopics says so
	}
	for _, t := range missing {
		resp, err := adm.CreateTopic(ctx, n, cfg.ReplicationFactor, repartitionTopicConfigs(), t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			errs = append(errs, fmt.Errorf("processor: creating the internal topic %q: %w", t, err))
			continue
		}
		log.Info("created the internal topic of a raw input", zap.String("topic", t), zap.Int32("partitions", n))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// A new topic is not at once in every broker's metadata: wait, as
	// prepareTopics' listing would otherwise find it missing.
	return waitTopics(ctx, adm, n, missing)
}

// waitTopics waits until the metadata shows each topic with n partitions.
func waitTopics(ctx context.Context, adm *kadm.Client, n int32, topics []string) error {
	for {
		details, err := adm.ListTopics(ctx, topics...)
		ready := err == nil
		for _, t := range topics {
			d, ok := existing(details, t)
			ready = ready && ok && int32(len(d.Partitions)) == n
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processor: the internal topics %v are not in the metadata: %w", topics, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
