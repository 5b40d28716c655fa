// Command goka is the benchmark's peer: the shared workload's logic (cart
// tracking, per-customer counters, and the cart-abandonment rule with its
// delay) written with github.com/lovoo/goka v1.1.16 in its idiomatic form:
// one processor group over the three co-partitioned input streams, the
// customer record in the group table (goka's Persist edge, LevelDB locally
// and a compacted table topic in Kafka), triggers emitted to an output
// stream.
//
// Goka has no timers. The workaround used here is the one goka users build:
// a delay loop outside the table. On a cart change the processor emits a
// check to a delay stream; a second, stateless goka processor (the
// delayer) keeps those checks in an in-memory heap and a ticker re-emits each
// due check, with a goka.Emitter, into a checks stream that the main
// processor consumes as one more co-partitioned input.
//
// Two things make its triggers the benchmark checker's:
//
//   - Placement. Every producer of the peer (the group's emits and table,
//     the emitter) partitions with Kafka's murmur2 (hash.go), as the
//     inputs are written: goka's default FNV-1a would send a customer's
//     checks to a partition whose table does not hold the customer.
//   - Event-time order. Goka hands a partition's inputs over in arrival
//     order (a purchase can come after the customer's later clicks), and
//     due times are event times. The group keeps a watermark per partition
//     (clock.go: the lowest latest event time of its inputs, an input read
//     up to its end offset not holding it back, never going back); a
//     customer's cart changes ahead of it wait in an in-memory buffer
//     beside the table and are applied to the customer's record in
//     event-time order once it passes them (cart.go), and the
//     delayer releases a check only once it has passed the check's due
//     time, so that every check is decided the one time it arrives.
//
// The benchmark (test/bench) builds this module on its own and runs it as a
// child process on the same broker and input as triggerd. It keeps its
// dependencies (sarama, goka, LevelDB) out of the main module.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/linkedin/goavro/v2"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated brokers")
	group := flag.String("group", "goka-peer", "consumer group (its table topic is <group>-table)")
	click := flag.String("clickstream", "clickstream", "input topic")
	tx := flag.String("transactions", "transactions", "input topic")
	prof := flag.String("profiles", "profiles", "input topic")
	out := flag.String("triggers", "goka-triggers", "output topic")
	delayTopic := flag.String("delay", "goka-delay", "delay stream (checks waiting for their due time)")
	checksTopic := flag.String("checks", "goka-checks", "checks stream (due checks, an input of the group)")
	registry := flag.String("registry", "", "schema registry URL (the inputs are Avro with Confluent framing)")
	dir := flag.String("dir", "goka-state", "local storage")
	stage1 := flag.Duration("stage1", time.Hour, "cart abandonment delay")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	n := &counts{}
	err := run(ctx, strings.Split(*brokers, ","), *group, *click, *tx, *prof, *out, *delayTopic, *checksTopic, *registry, *dir, *stage1, n)
	log.Printf("goka peer: %s", n)
	if err != nil {
		pprof.StopCPUProfile()
		log.Fatal(err)
	}
}

// counts are the peer's work, logged every 2 s while they change and at the end: input
// events, checks emitted to the delay stream, released by the delayer and
// handled by the group, triggers, and, summed over the events, the
// customer's cart changes left ahead of the watermark and how far the
// partition's latest event time was ahead of its watermark.
type counts struct {
	events, wakeups, released, checks, triggers, ahead, lagMs atomic.Int64
}

func (n *counts) String() string {
	ev := n.events.Load()
	return fmt.Sprintf("events=%d delay_emits=%d released=%d checks=%d triggers=%d ahead_per_event=%.2f watermark_lag_per_event=%.1fs",
		ev, n.wakeups.Load(), n.released.Load(), n.checks.Load(), n.triggers.Load(), float64(n.ahead.Load())/float64(max(ev, 1)),
		float64(n.lagMs.Load())/1000/float64(max(ev, 1)))
}

func run(ctx context.Context, brokers []string, group, click, tx, prof, out, delayTopic, checksTopic, registry, dir string, stage1 time.Duration, n *counts) error {
	// Best settings for throughput: goka's defaults with snappy off (the
	// broker is local), a larger fetch, inputs from the oldest offset.
	cfg := goka.DefaultConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Producer.Compression = sarama.CompressionNone
	cfg.Consumer.Fetch.Default = 4 << 20
	cfg.ChannelBufferSize = 1024
	goka.ReplaceGlobalConfig(cfg)
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = 1
	tmc.Stream.Replication = 1
	tmb := goka.TopicManagerBuilderWithTopicManagerConfig(tmc)

	// The watermarks' high-watermark poller has its own client.
	client, err := sarama.NewClient(brokers, goka.DefaultConfig())
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer client.Close()
	parts, err := client.Partitions(click)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", click, err)
	}
	if dp, err := client.Partitions(delayTopic); err != nil || len(dp) != len(parts) {
		return fmt.Errorf("the delay stream %s must have the inputs' %d partitions (has %d: %v)", delayTopic, len(parts), len(dp), err)
	}
	clk := newClocks(int32(len(parts)), click, tx, prof)
	pending := newAhead(len(parts))

	events := &avroCodec{registry: registry, codecs: map[uint32]*goavro.Codec{}}
	g := goka.DefineGroup(goka.Group(group),
		goka.Inputs(goka.Streams{goka.Stream(click), goka.Stream(tx), goka.Stream(prof)}, events, func(ctx goka.Context, msg any) {
			onEvent(ctx, msg.(*event), stage1, clk, pending, goka.Stream(delayTopic), goka.Stream(out), n)
		}),
		goka.Input(goka.Stream(checksTopic), jsonCodec[check]{}, func(ctx goka.Context, msg any) {
			onCheck(ctx, stage1, clk, pending, goka.Stream(out), n)
		}),
		goka.Output(goka.Stream(delayTopic), jsonCodec[check]{}),
		goka.Output(goka.Stream(out), jsonCodec[trigger]{}),
		goka.Persist(jsonCodec[customer]{}),
	)
	proc, err := goka.NewProcessor(brokers, g, goka.WithTopicManagerBuilder(tmb), goka.WithHasher(newKafkaHash),
		goka.WithStorageBuilder(storage.DefaultBuilder(dir)))
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}

	emitter, err := goka.NewEmitter(brokers, goka.Stream(checksTopic), jsonCodec[check]{},
		goka.WithEmitterTopicManagerBuilder(tmb), goka.WithEmitterHasher(newKafkaHash))
	if err != nil {
		return fmt.Errorf("emitter: %w", err)
	}
	d := newDelayer(clk, n)
	dg := goka.DefineGroup(goka.Group(group+"-delayer"),
		goka.Input(goka.Stream(delayTopic), jsonCodec[check]{}, func(ctx goka.Context, msg any) {
			d.add(ctx.Partition(), ctx.Key(), msg.(*check))
		}),
	)
	dproc, err := goka.NewProcessor(brokers, dg, goka.WithTopicManagerBuilder(tmb), goka.WithHasher(newKafkaHash),
		goka.WithStorageBuilder(storage.MemoryBuilder()))
	if err != nil {
		return fmt.Errorf("delayer: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- proc.Run(ctx) })
	wg.Go(func() { errc <- dproc.Run(ctx) })
	wg.Go(func() { errc <- d.tick(ctx, emitter) })
	wg.Go(func() { clk.pollHighWatermarks(client, 200*time.Millisecond, ctx.Done()) })
	wg.Go(func() { logCounts(ctx, n, 2*time.Second) })
	// The first to end (an error, or all three at SIGTERM) ends the run;
	// the others follow ctx.
	first := <-errc
	cancel()
	wg.Wait()
	return errors.Join(first, emitter.Finish())
}

// logCounts logs the counts every interval while they change.
func logCounts(ctx context.Context, n *counts, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s := n.String(); s != last {
			log.Printf("goka peer: %s", s)
			last = s
		}
	}
}

// jsonCodec is goka's usual codec shape for a Go type.
type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (jsonCodec[T]) Decode(b []byte) (any, error) {
	v := new(T)
	return v, json.Unmarshal(b, v)
}

// event is what the logic reads of an input record.
type event struct {
	ID       string
	Type     string
	Time     time.Time
	Quantity int32
	Price    int64 // minor units
	Amount   int64 // minor units
}

// avroCodec decodes Avro records with the Confluent framing (magic byte,
// schema ID), fetching each writer schema once from the registry.
type avroCodec struct {
	registry string
	mu       sync.RWMutex
	codecs   map[uint32]*goavro.Codec
}

func (a *avroCodec) Encode(any) ([]byte, error) {
	return nil, errors.New("goka peer: inputs are read-only")
}

func (a *avroCodec) Decode(b []byte) (any, error) {
	if len(b) < 5 || b[0] != 0 {
		return nil, errors.New("goka peer: not Confluent-framed Avro")
	}
	id := binary.BigEndian.Uint32(b[1:5])
	c, err := a.codec(id)
	if err != nil {
		return nil, err
	}
	native, _, err := c.NativeFromBinary(b[5:])
	if err != nil {
		return nil, err
	}
	m := native.(map[string]any)
	ev := &event{}
	ev.ID, _ = m["event_id"].(string)
	ev.Type, _ = m["type"].(string)
	ev.Time, _ = m["event_time"].(time.Time)
	if q, ok := union(m["quantity"]).(int32); ok {
		ev.Quantity = q
	}
	if p, ok := union(m["price"]).(map[string]any); ok {
		ev.Price, _ = p["minor"].(int64)
	}
	if p, ok := m["amount"].(map[string]any); ok {
		ev.Amount, _ = p["minor"].(int64)
	}
	return ev, nil
}

// union unwraps goavro's {"type": value} form of a union value.
func union(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, x := range m {
			return x
		}
	}
	return v
}

func (a *avroCodec) codec(id uint32) (*goavro.Codec, error) {
	a.mu.RLock()
	c := a.codecs[id]
	a.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	resp, err := http.Get(a.registry + "/schemas/ids/" + strconv.FormatUint(uint64(id), 10))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var s struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("goka peer: schema %d: %w", id, err)
	}
	if c, err = goavro.NewCodec(s.Schema); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.codecs[id] = c
	a.mu.Unlock()
	return c, nil
}
