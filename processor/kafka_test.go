package processor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

// newTopicCluster is a kfake cluster with partitions[topic] partitions for
// each topic (configs[topic] their configs). It returns a function that
// makes an admin client: a new one for each look, as each start of the
// processor makes one, because a client answers ListTopics from metadata
// it cached for a while.
func newTopicCluster(t *testing.T, partitions map[string]int32, configs map[string]map[string]*string) func() *kadm.Client {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	admin := func() *kadm.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := admin()
	for topic, n := range partitions {
		resp, err := adm.CreateTopic(ctx, n, 1, configs[topic], topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("creating %s: %v", topic, err)
		}
	}
	return admin
}

// TestPrepareTopicsReportsEveryProblem starts on a cluster with two inputs
// missing, an output missing while create_topics is off, and a changelog
// with another partition count that is not compacted: one error names them
// all, so that an operator fixes them in one round, and nothing is created.
func TestPrepareTopicsReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CreateTopics = false
	del := "delete"
	admin := newTopicCluster(t, map[string]int32{
		cfg.Topics.Clickstream: 2, cfg.Topics.Triggers: 2, cfg.Topics.DeadLetter: 2, cfg.Topics.Changelog: 3,
	}, map[string]map[string]*string{cfg.Topics.Changelog: {"cleanup.policy": &del}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := prepareTopics(ctx, admin(), &cfg, zaptest.NewLogger(t))
	if err == nil {
		t.Fatal("prepareTopics accepted missing and mismatched topics")
	}
	for _, want := range []string{
		`input topic "transactions" (topics.transactions) does not exist`,
		`input topic "profiles" (topics.profiles) does not exist`,
		`topic "triggerd.suppressions" (topics.suppressions) does not exist and create_topics is off`,
		`partition counts clickstream=2, triggerd.changelog=3`,
		`changelog topic "triggerd.changelog" has cleanup.policy=delete`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if !errors.As(err, new(*CopartitionError)) {
		t.Errorf("error holds no CopartitionError: %v", err)
	}
	details, lerr := admin().ListTopics(ctx)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if _, ok := details[cfg.SuppressionsTopic()]; ok {
		t.Errorf("%s was created though the start failed", cfg.SuppressionsTopic())
	}
}

// TestPrepareTopicsCreatesOnlyWhenAllIsWell: with create_topics on, inputs
// that are not co-partitioned stop the start before any output topic is
// created; once they agree, the outputs are created with their count.
func TestPrepareTopicsCreatesOnlyWhenAllIsWell(t *testing.T) {
	cfg := DefaultConfig()
	admin := newTopicCluster(t, map[string]int32{cfg.Topics.Clickstream: 2, cfg.Topics.Transactions: 2, cfg.Topics.Profiles: 3}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := prepareTopics(ctx, admin(), &cfg, zaptest.NewLogger(t))
	if !errors.As(err, new(*CopartitionError)) || !strings.Contains(err.Error(), "profiles=3") {
		t.Fatalf("prepareTopics = %v, want a CopartitionError naming profiles=3", err)
	}
	details, err := admin().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := details[cfg.Topics.Changelog]; ok {
		t.Fatal("the changelog was created though the inputs are not co-partitioned")
	}

	if _, err := admin().CreatePartitions(ctx, 1, cfg.Topics.Clickstream, cfg.Topics.Transactions); err != nil {
		t.Fatal(err)
	}
	n, err := prepareTopics(ctx, admin(), &cfg, zaptest.NewLogger(t))
	if err != nil || n != 3 {
		t.Fatalf("prepareTopics = %d, %v; want 3 partitions", n, err)
	}
	details, err = admin().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{cfg.Topics.Triggers, cfg.SuppressionsTopic(), cfg.Topics.DeadLetter, cfg.Topics.Changelog} {
		if got := len(details[topic].Partitions); got != 3 {
			t.Errorf("%s has %d partitions, want 3", topic, got)
		}
	}
}
