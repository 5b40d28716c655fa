package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/processor"
)

// Cluster is the Kafka the test runs against.
type Cluster struct {
	Brokers []string
	Real    bool
}

// NewCluster returns the real broker named by TRIGGERD_KAFKA_BROKERS, or an
// in-process kfake cluster closed at the end of the test.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	if b := os.Getenv("TRIGGERD_KAFKA_BROKERS"); b != "" {
		t.Logf("using the real Kafka broker at %s", b)
		return &Cluster{Brokers: strings.Split(b, ","), Real: true}
	}
	_, c := NewKfake(t)
	return c
}

// NewKfake returns an in-process kfake cluster, whatever
// TRIGGERD_KAFKA_BROKERS says, with its handle: for tests that make the
// broker answer as a real one does in a fault (kfake's request control).
// It is closed when the test ends.
func NewKfake(t testing.TB) (*kfake.Cluster, *Cluster) {
	t.Helper()
	kf, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(kf.Close)
	return kf, &Cluster{Brokers: kf.ListenAddrs()}
}

func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Topics creates fresh input topics with a unique prefix and returns a
// processor config pointing at them (JSON encodings, event-time driven).
func (c *Cluster) Topics(t testing.TB, partitions int32) processor.Config {
	t.Helper()
	prefix := fmt.Sprintf("t%d-%s-", rand.Uint32(), strings.ReplaceAll(t.Name(), "/", "_"))
	cfg := processor.DefaultConfig()
	cfg.Brokers = c.Brokers
	cfg.Group = prefix + "group"
	cfg.InstanceID = "i1"
	cfg.Topics = processor.Topics{
		Clickstream:  prefix + "clickstream",
		Transactions: prefix + "transactions",
		Profiles:     prefix + "profiles",
		Triggers:     prefix + "triggers",
		DeadLetter:   prefix + "dlq",
		Changelog:    prefix + "changelog",
		Suppressions: prefix + "suppressions",
	}
	cfg.ReplicationFactor = 1
	cfg.StartFrom = "earliest"
	cfg.IdleAdvance = false
	cfg.Lateness = 0
	cfg.Tick = 50 * time.Millisecond
	cfg.TransactionTimeout = 10 * time.Second
	cfg.SessionTimeout = 6 * time.Second
	// The test producers write synchronously: no record is buffered
	// while the brokers are away and delivered seconds later, which is
	// what the default grace (10 s) waits for after every start. Each
	// test with idle_advance would wait it out at every start.
	cfg.ReconnectGrace = time.Second
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Test workloads are stamped in event time, often weeks in the past:
	// with the broker's default time retention (7 days) the broker would
	// delete them while the processor still needs them.
	forever := "-1"
	// And some tests write records stamped decades off (the processor
	// must dead-letter them), which a broker refuses by default
	// (message.timestamp.after.max.ms: an hour ahead of its clock).
	anyTime := "9223372036854775807"
	resp, err := adm.CreateTopics(ctx, partitions, 1, map[string]*string{
		"retention.ms": &forever, "message.timestamp.before.max.ms": &anyTime, "message.timestamp.after.max.ms": &anyTime,
	}, cfg.Inputs()...)
	if err != nil {
		t.Fatalf("create topics: %v", err)
	}
	for _, r := range resp {
		if r.Err != nil {
			t.Fatalf("create topic %s: %v", r.Topic, r.Err)
		}
	}
	WaitTopics(t, ctx, adm, partitions, cfg.Inputs()...)
	return cfg
}

// WaitTopics waits until the metadata shows every topic with all its
// partitions: a real broker answers CreateTopics before its metadata cache
// has the topics, and a processor started at once would find them missing.
func WaitTopics(t testing.TB, ctx context.Context, adm *kadm.Client, partitions int32, topics ...string) {
	t.Helper()
	for {
		details, err := adm.ListTopics(ctx, topics...)
		ready := err == nil
		for _, tp := range topics {
			d, ok := details[tp]
			ready = ready && ok && d.Err == nil && int32(len(d.Partitions)) == partitions
		}
		if ready {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topics %v not visible in the metadata: %v", topics, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
