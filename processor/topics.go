package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// TopicStatus is one configured topic as the cluster has it.
type TopicStatus struct {
	Topic   string
	Setting string // its setting's path under kafka, e.g. topics.clickstream
	Input   bool   // an input the workers consume (an internal topic too)
	// Kind is "input" (co-partitioned, written by the producers), "raw"
	// (a raw input, any partitioning: repartition.inputs), "internal"
	// (a raw input's internal topic, written by the repartition stage) or
	// "output".
	Kind       string
	Exists     bool
	Partitions int32 // when it exists
}

// TopicsReport is what CheckTopics found (and created).
type TopicsReport struct {
	Topics  []TopicStatus
	Created []string
	// ToCreate are the missing output topics that "run" creates at start
	// (create_topics on).
	ToCreate []string
	// Problems are every reason "run" would refuse to start, as the
	// processor reports them (checkTopics).
	Problems []error
}

// CheckTopics checks the configured topics as the processor does at start,
// for "triggerd topics": every input exists, the inputs and the changelog
// are co-partitioned, the changelog is compacted, the outputs exist or may
// be created. With create it first creates the missing input topics (with
// the existing inputs' partition count, else partitions) and then the
// missing outputs, as "run" would with create_topics on. The error is a
// failure to ask the cluster; what is wrong with the topics is in the
// report.
func CheckTopics(ctx context.Context, cfg Config, create bool, partitions int32, log *zap.Logger) (TopicsReport, error) {
	var rep TopicsReport
	opts, err := baseOpts(&cfg, log)
	if err != nil {
		return rep, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ClientID("triggerd-topics"))...)
	if err != nil {
		return rep, fmt.Errorf("processor: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	all := append(append([]string(nil), cfg.Inputs()...), cfg.Topics.Triggers, cfg.SuppressionsTopic(), cfg.Topics.DeadLetter, cfg.Topics.Changelog)
	details, err := adm.ListTopics(ctx, all...)
	if err != nil {
		return rep, fmt.Errorf("processor: listing topics: %w", err)
	}
	if create {
		if err := createInputs(ctx, adm, &cfg, details, partitions, &rep, log); err != nil {
			rep.Problems = append(rep.Problems, err)
		} else {
			cfg.CreateTopics = true
			before := details
			err := prepareRepartition(ctx, adm, &cfg, log) // the internal topics, as "run" does
			if err == nil {
				_, err = prepareTopics(ctx, adm, &cfg, log)
			}
			if err != nil {
				rep.Problems = append(rep.Problems, split(err)...)
			}
			if details, err = adm.ListTopics(ctx, all...); err != nil {
				return rep, fmt.Errorf("processor: listing topics: %w", err)
			}
			for _, t := range all {
				if _, was := existing(before, t); !was && !slices.Contains(rep.Created, t) {
					if _, now := existing(details, t); now {
						rep.Created = append(rep.Created, t)
					}
				}
			}
		}
	}
	if len(rep.Problems) == 0 {
		_, missing, errs := checkTopics(&cfg, details)
		rep.ToCreate, rep.Problems = missing, errs
		checkRawTopics(ctx, opts, adm, &cfg, details, &rep) // topics_raw.go
		if _, ok := existing(details, cfg.Topics.Changelog); ok {
			if err := checkChangelogConfig(ctx, adm, cfg.Topics.Changelog); err != nil {
				rep.Problems = append(rep.Problems, err)
			}
		}
	}
	settings := []string{"topics.clickstream", "topics.transactions", "topics.profiles", "topics.triggers", "topics.suppressions",
		"topics.dead_letter", "topics.changelog"}
	for i, t := range all {
		d, ok := existing(details, t)
		st := TopicStatus{Topic: t, Setting: settings[i], Input: i < len(cfg.Inputs()), Kind: "output", Exists: ok,
			Partitions: int32(len(d.Partitions))}
		if st.Input {
			st.Kind = "input"
			if cfg.isRaw(inputKeys[i]) {
				st.Kind, st.Setting = "internal", "repartition of "+settings[i]
			}
		}
		rep.Topics = append(rep.Topics, st)
	}
	rawStatuses(ctx, adm, &cfg, &rep)
	return rep, nil
}

// createInputs creates the missing input topics with the existing inputs'
// partition count (they must agree), or partitions when none exists.
func createInputs(ctx context.Context, adm *kadm.Client, cfg *Config, details kadm.TopicDetails, partitions int32, rep *TopicsReport, log *zap.Logger) error {
	var missing []string
	n := int32(0)
	for i, t := range cfg.Inputs() {
		if cfg.isRaw(inputKeys[i]) {
			continue // an internal topic: prepareRepartition's
		}
		d, ok := existing(details, t)
		if !ok {
			missing = append(missing, t)
			continue
		}
		if c := int32(len(d.Partitions)); n == 0 {
			n = c
		} else if c != n {
			return fmt.Errorf("processor: the existing input topics have different partition counts; nothing was created (see below)")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	switch {
	case n == 0 && partitions <= 0:
		return fmt.Errorf("processor: no input topic exists: give the partition count of the inputs (--partitions N); nothing was created")
	case n == 0:
		n = partitions
	case partitions > 0 && partitions != n:
		return fmt.Errorf("processor: --partitions %d, but the existing input topics have %d partitions: the inputs must be co-partitioned; nothing was created", partitions, n)
	}
	for _, t := range missing {
		resp, err := adm.CreateTopic(ctx, n, cfg.ReplicationFactor, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			return fmt.Errorf("processor: creating input topic %q: %w", t, err)
		}
		log.Info("created topic", zap.String("topic", t), zap.Int32("partitions", n))
		rep.Created = append(rep.Created, t)
	}
	// A created topic may not be in every broker's metadata yet: the
	// checks that follow list it again until it is.
	for attempt := 0; attempt < 40; attempt++ {
		d, err := adm.ListTopics(ctx, missing...)
		if err != nil {
			return fmt.Errorf("processor: listing topics: %w", err)
		}
		all := true
		for _, t := range missing {
			if td, ok := existing(d, t); !ok || int32(len(td.Partitions)) != n {
				all = false
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("processor: the created input topics %v do not show in the metadata yet; run again", missing)
}

// split undoes errors.Join.
func split(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, split(e)...)
		}
		return out
	}
	var se *sessionError
	if errors.As(err, &se) {
		return []error{se.err}
	}
	return []error{err}
}
