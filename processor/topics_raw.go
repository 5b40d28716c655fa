package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The raw inputs in "triggerd topics". A raw input's topic is the
// producers' (any partition count, any key): it must exist and be readable
// by the repartition stage. Its internal topic is the stage's, not the
// producers': missing, "run" creates it with create_topics on.

// checkRawTopics adds the problems of the raw inputs and their internal
// topics to rep: a raw topic that does not exist or cannot be read, and an
// internal topic missing with create_topics off. A missing internal topic
// is no "input topic does not exist" problem (checkTopics says so of every
// input): "run" creates it.
func checkRawTopics(ctx context.Context, opts []kgo.Opt, adm *kadm.Client, cfg *Config, details kadm.TopicDetails, rep *TopicsReport) {
	raw := cfg.RawInputs()
	if len(raw) == 0 {
		return
	}
	for i, t := range cfg.declaredInputs() {
		if !cfg.isRaw(inputKeys[i]) {
			continue
		}
		internal := cfg.RepartitionTopic(t)
		if _, ok := existing(details, internal); ok {
			continue
		}
		rep.Problems = slices.DeleteFunc(rep.Problems, func(err error) bool {
			return strings.Contains(err.Error(), strconv.Quote(internal)+" (") && strings.Contains(err.Error(), "does not exist")
		})
		if cfg.CreateTopics {
			rep.ToCreate = append(rep.ToCreate, internal)
		} else {
			rep.Problems = append(rep.Problems, fmt.Errorf("processor: the internal topic %q of raw input %q does not exist and create_topics is off", internal, t))
		}
	}
	rawDetails, err := adm.ListTopics(ctx, raw...)
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Errorf("processor: listing the raw input topics: %w", err))
		return
	}
	for i, t := range cfg.declaredInputs() {
		if !cfg.isRaw(inputKeys[i]) {
			continue
		}
		what := fmt.Sprintf("raw input topic %q (topics.%s, repartition.inputs)", t, inputKeys[i])
		if d, ok := existing(rawDetails, t); !ok {
			rep.Problems = append(rep.Problems, topicError(d, what))
		} else if err := readable(ctx, opts, t); err != nil {
			rep.Problems = append(rep.Problems, fmt.Errorf("processor: %s cannot be read: %w", what, err))
		}
	}
}

// readable reads the first partition of topic from its start for a moment:
// a broker that refuses (authorization) answers the fetch with an error. An
// empty partition answers nothing, which is fine.
func readable(ctx context.Context, opts []kgo.Opt, topic string) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...), kgo.ClientID("triggerd-topics"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.FetchMaxBytes(1<<16))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	pollCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var first error
	cl.PollRecords(pollCtx, 1).EachError(func(_ string, _ int32, err error) {
		if first == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			first = err
		}
	})
	return first
}

// rawStatuses adds the raw input topics to rep's list.
func rawStatuses(ctx context.Context, adm *kadm.Client, cfg *Config, rep *TopicsReport) {
	raw := cfg.RawInputs()
	if len(raw) == 0 {
		return
	}
	details, _ := adm.ListTopics(ctx, raw...) // an error shows as missing, and is a problem already
	for i, t := range cfg.declaredInputs() {
		if cfg.isRaw(inputKeys[i]) {
			d, ok := existing(details, t)
			rep.Topics = append(rep.Topics, TopicStatus{Topic: t, Setting: "topics." + inputKeys[i], Kind: "raw", Exists: ok,
				Partitions: int32(len(d.Partitions))})
		}
	}
}
