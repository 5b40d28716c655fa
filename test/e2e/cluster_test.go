package e2e

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
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
)

// cluster is the Kafka the test runs against.
type cluster struct {
	brokers []string
	real    bool
}

// newCluster returns the real broker named by TRIGGERD_KAFKA_BROKERS, or an
// in-process kfake cluster closed at the end of the test.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	if b := os.Getenv("TRIGGERD_KAFKA_BROKERS"); b != "" {
		t.Logf("using the real Kafka broker at %s", b)
		return &cluster{brokers: strings.Split(b, ","), real: true}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &cluster{brokers: c.ListenAddrs()}
}

func (c *cluster) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// topics creates fresh input topics with a unique prefix and returns a
// processor config pointing at them (JSON encodings, event-time driven).
func (c *cluster) topics(t *testing.T, partitions int32) processor.Config {
	t.Helper()
	prefix := fmt.Sprintf("t%d-%s-", rand.Uint32(), strings.ReplaceAll(t.Name(), "/", "_"))
	cfg := processor.DefaultConfig()
	cfg.Brokers = c.brokers
	cfg.Group = prefix + "group"
	cfg.InstanceID = "i1"
	cfg.Topics = processor.Topics{
		Clickstream:  prefix + "clickstream",
		Transactions: prefix + "transactions",
		Profiles:     prefix + "profiles",
		Triggers:     prefix + "triggers",
		DeadLetter:   prefix + "dlq",
		Changelog:    prefix + "changelog",
	}
	cfg.ReplicationFactor = 1
	cfg.StartFrom = "earliest"
	cfg.IdleAdvance = false
	cfg.Lateness = 0
	cfg.Tick = 50 * time.Millisecond
	cfg.TransactionTimeout = 10 * time.Second
	cfg.SessionTimeout = 6 * time.Second
	adm := kadm.NewClient(c.client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, cfg.Inputs()...)
	if err != nil {
		t.Fatalf("create topics: %v", err)
	}
	for _, r := range resp {
		if r.Err != nil {
			t.Fatalf("create topic %s: %v", r.Topic, r.Err)
		}
	}
	return cfg
}

// producer writes events keyed by customer ID with the event time as the
// record timestamp, the way a well-behaved upstream does.
type producer struct {
	t    *testing.T
	reg  *sr.Client
	cl   *kgo.Client
	cfg  processor.Config
	encs map[schemas.Source]*schemas.EventEncoder
}

// newProducer encodes with the formats in cfg.Encodings; reg is the schema
// registry for avro (nil for json).
func newProducer(t *testing.T, c *cluster, cfg processor.Config, reg *sr.Client) *producer {
	t.Helper()
	p := &producer{t: t, reg: reg, cl: c.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner())), cfg: cfg, encs: map[schemas.Source]*schemas.EventEncoder{}}
	formats := map[schemas.Source]schemas.Format{
		schemas.SourceClickstream: cfg.Encodings.Clickstream,
		schemas.SourceTransaction: cfg.Encodings.Transactions,
		schemas.SourceProfile:     cfg.Encodings.Profiles,
	}
	for _, src := range []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile} {
		enc, err := schemas.NewEventEncoder(context.Background(), src, formats[src], reg, p.topic(src)+"-value")
		if err != nil {
			t.Fatalf("encoder: %v", err)
		}
		p.encs[src] = enc
	}
	return p
}

func (p *producer) topic(src schemas.Source) string {
	switch src {
	case schemas.SourceTransaction:
		return p.cfg.Topics.Transactions
	case schemas.SourceProfile:
		return p.cfg.Topics.Profiles
	}
	return p.cfg.Topics.Clickstream
}

// send produces events synchronously, each to the partition given by
// partitionOf (Kafka's default partitioner for real customers).
func (p *producer) send(partitions int32, evs ...schemas.Event) {
	p.t.Helper()
	var recs []*kgo.Record
	for i := range evs {
		ev := &evs[i]
		val, err := p.encs[ev.Source].Encode(nil, ev)
		if err != nil {
			p.t.Fatalf("encode %+v: %v", ev, err)
		}
		recs = append(recs, &kgo.Record{
			Topic: p.topic(ev.Source), Partition: partitionOf(string(ev.Customer), partitions),
			Key: []byte(ev.Customer), Value: val, Timestamp: ev.Time,
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		p.t.Fatalf("produce: %v", err)
	}
}

// tick advances event time on every partition of every input topic to at, with events of a per-partition ticker
// customer (which no rule reacts to).
func (p *producer) tick(partitions int32, at time.Time) {
	p.t.Helper()
	var recs []*kgo.Record
	for part := int32(0); part < partitions; part++ {
		for _, src := range []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile} {
			cust := schemas.CustomerID(fmt.Sprintf("ticker-%d", part))
			ev := schemas.Event{Source: src, ID: fmt.Sprintf("tick-%d-%d-%d", part, src, at.UnixMilli()),
				Customer: cust, Type: "page_view", Time: at}
			switch src {
			case schemas.SourceTransaction:
				ev.Type = "heartbeat"
			case schemas.SourceProfile:
				ev.Type = schemas.ProfileUpdate
			}
			val, err := p.encs[src].Encode(nil, &ev)
			if err != nil {
				p.t.Fatalf("encode tick: %v", err)
			}
			recs = append(recs, &kgo.Record{Topic: p.topic(src), Partition: part, Key: []byte(cust), Value: val, Timestamp: at})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		p.t.Fatalf("produce ticks: %v", err)
	}
}

// partitionOf is Kafka's default partitioner: murmur2 of the key, positive,
// modulo the partition count. Written here so the tests do not depend on
// the processor's choice.
func partitionOf(key string, n int32) int32 {
	return int32(murmur2([]byte(key))&0x7fffffff) % n
}

func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(data))
	for len(data) >= 4 {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// firedTrigger is what a downstream sender sees of one trigger.
type firedTrigger struct {
	id, headerID string
	customer     string
	kind         string
	stage        int32
	channel      string
	due          time.Time
}

// triggerReader reads committed triggers (read_committed), as a downstream
// sender must.
type triggerReader struct {
	t   *testing.T
	cl  *kgo.Client
	dec *schemas.TriggerDecoder
}

func newTriggerReader(t *testing.T, c *cluster, topic string, f schemas.Format, reg *sr.Client) *triggerReader {
	dec, err := schemas.NewTriggerDecoder(f, reg)
	if err != nil {
		t.Fatal(err)
	}
	return &triggerReader{t: t, dec: dec, cl: c.client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))}
}

// read collects triggers until want have arrived and then quiet has passed
// with none, or until timeout. Reading on after the expected count is what
// lets a test see a duplicate or an unexpected trigger.
func (r *triggerReader) read(want int, quiet, timeout time.Duration) []firedTrigger {
	r.t.Helper()
	var out []firedTrigger
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		wait := quiet
		if len(out) < want {
			wait = time.Until(deadline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fetches := r.cl.PollFetches(ctx)
		cancel()
		recs := fetches.Records()
		for _, rec := range recs {
			var tr schemas.Trigger
			if err := r.dec.Decode(rec.Value, &tr); err != nil {
				r.t.Fatalf("undecodable trigger: %v", err)
			}
			ft := firedTrigger{id: tr.ID, customer: string(tr.Customer), kind: tr.Kind, stage: tr.Stage,
				channel: string(tr.Channel), due: tr.DueAt}
			for _, h := range rec.Headers {
				if h.Key == processor.HeaderTriggerID {
					ft.headerID = string(h.Value)
				}
			}
			if string(rec.Key) != ft.customer {
				r.t.Errorf("trigger %s keyed %q, want the customer ID %q", ft.id, rec.Key, ft.customer)
			}
			out = append(out, ft)
		}
		if len(recs) == 0 && len(out) >= want {
			break
		}
	}
	return out
}
