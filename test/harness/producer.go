package harness

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
)

// Producer writes events keyed by customer ID with the event time as the
// record timestamp, the way a well-behaved upstream does.
type Producer struct {
	t    testing.TB
	reg  *sr.Client
	Cl   *kgo.Client
	cfg  processor.Config
	encs map[schemas.Source]*schemas.EventEncoder
	// held is taken by each write and by Hold, which keeps writes out
	// of a window (a broker SIGKILL).
	held sync.Mutex
}

// NewProducer encodes with the formats in cfg.Encodings; reg is the schema
// registry for avro (nil for json).
func NewProducer(t testing.TB, c *Cluster, cfg processor.Config, reg *sr.Client) *Producer {
	t.Helper()
	p := &Producer{t: t, reg: reg, Cl: c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner())), cfg: cfg, encs: map[schemas.Source]*schemas.EventEncoder{}}
	formats := map[schemas.Source]schemas.Format{
		schemas.SourceClickstream: cfg.Encodings.Clickstream,
		schemas.SourceTransaction: cfg.Encodings.Transactions,
		schemas.SourceProfile:     cfg.Encodings.Profiles,
	}
	for _, src := range []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile} {
		enc, err := schemas.NewEventEncoder(context.Background(), src, formats[src], reg, p.Topic(src)+"-value")
		if err != nil {
			t.Fatalf("encoder: %v", err)
		}
		p.encs[src] = enc
	}
	return p
}

func (p *Producer) Topic(src schemas.Source) string {
	switch src {
	case schemas.SourceTransaction:
		return p.cfg.Topics.Transactions
	case schemas.SourceProfile:
		return p.cfg.Topics.Profiles
	}
	return p.cfg.Topics.Clickstream
}

// Send produces events synchronously, each to the partition given by
// partitionOf (Kafka's default partitioner for real customers). It fails
// the test on error: call it from the test's goroutine only.
func (p *Producer) Send(partitions int32, evs ...schemas.Event) {
	p.t.Helper()
	if err := p.Write(partitions, evs...); err != nil {
		p.t.Fatal(err)
	}
}

// Write is Send for other goroutines: it returns the error.
func (p *Producer) Write(partitions int32, evs ...schemas.Event) error {
	var recs []*kgo.Record
	for i := range evs {
		ev := &evs[i]
		val, err := p.encs[ev.Source].Encode(nil, ev)
		if err != nil {
			return fmt.Errorf("encode %+v: %w", ev, err)
		}
		recs = append(recs, &kgo.Record{
			Topic: p.Topic(ev.Source), Partition: PartitionOf(string(ev.Customer), partitions),
			Key: []byte(ev.Customer), Value: val, Timestamp: ev.Time,
		})
	}
	return p.WriteRecords(recs...)
}

// Encode encodes ev as the producer would send it.
func (p *Producer) Encode(ev *schemas.Event) ([]byte, error) {
	return p.encs[ev.Source].Encode(nil, ev)
}

// WriteRecords produces raw records synchronously (their topic and
// partition set), e.g. corrupt ones.
func (p *Producer) WriteRecords(recs ...*kgo.Record) error {
	p.held.Lock()
	defer p.held.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}

// Hold waits for the write in flight to be acknowledged and keeps further
// writes waiting until release is called. A test holds the producer while
// it stops the broker, with SIGKILL or SIGTERM alike: a batch the broker
// appended but had not acknowledged when it went away is sent again after
// the restart, and the broker, reloading its producer state, drops every
// producer whose last record timestamp (the records' CreateTime) is older
// than producer.id.expiration.ms (1 day). The workloads stamp their records
// weeks in the past, so the broker has forgotten this producer's sequence
// numbers and appends the batch a second time (seen: one batch, producer 0
// epoch 0, sequences 22020-22110, at offsets 22020 and 22111). That
// duplicate is the upstream's, and a model of what was written cannot know
// of it.
func (p *Producer) Hold() (release func()) {
	p.held.Lock()
	return p.held.Unlock
}

// Tick advances event time on every partition of every input topic to at,
// with events of a per-partition ticker customer (which no rule reacts to).
// It fails the test on error: call it from the test's goroutine only.
func (p *Producer) Tick(partitions int32, at time.Time) {
	p.t.Helper()
	if err := p.WriteTick(partitions, at); err != nil {
		p.t.Fatal(err)
	}
}

// WriteTick is Tick for other goroutines: it returns the error.
func (p *Producer) WriteTick(partitions int32, at time.Time) error {
	var recs []*kgo.Record
	for part := int32(0); part < partitions; part++ {
		for _, src := range []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile} {
			cust := schemas.CustomerID(Ticker(part, partitions))
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
				return fmt.Errorf("encode tick: %w", err)
			}
			recs = append(recs, &kgo.Record{Topic: p.Topic(src), Partition: part, Key: []byte(cust), Value: val, Timestamp: at})
		}
	}
	return p.WriteRecords(recs...)
}

// Ticker is the ticker customer of partition part among n: "ticker-P", or
// "ticker-P-I" with the first I whose ID Kafka's default partitioner puts
// on P, since the processor dead-letters a record on another partition
// than its key's (misrouted).
func Ticker(part, n int32) string {
	id := fmt.Sprintf("ticker-%d", part)
	for i := 1; PartitionOf(id, n) != part; i++ {
		id = fmt.Sprintf("ticker-%d-%d", part, i)
	}
	return id
}

// PartitionOf is Kafka's default partitioner: murmur2 of the key, positive,
// modulo the partition count. Written here so the tests do not depend on
// the processor's choice.
func PartitionOf(key string, n int32) int32 {
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
