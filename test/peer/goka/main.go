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
// "check" to a delay stream; a second, stateless goka processor (the
// delayer) keeps those checks in an in-memory heap and a ticker re-emits each
// due check, with a goka.Emitter, into a checks stream that the main
// processor consumes as one more co-partitioned input; there the customer's
// record says whether the cart is still abandoned (same cart change, not
// bought). Due times are event times: the delayer releases a check when the
// highest event time it has seen passes its due time. The heap is not
// durable (a crash loses pending checks); the comparison favours goka there.
//
// The benchmark (test/bench) builds this module on its own and runs it as a
// child process on the same broker and input as triggerd. It keeps its
// dependencies (sarama, goka, LevelDB) out of the main module.
package main

import (
	"container/heap"
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
	"strconv"
	"strings"
	"sync"
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
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, strings.Split(*brokers, ","), *group, *click, *tx, *prof, *out, *delayTopic, *checksTopic, *registry, *dir, *stage1); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, brokers []string, group, click, tx, prof, out, delayTopic, checksTopic, registry, dir string, stage1 time.Duration) error {
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

	events := &avroCodec{registry: registry, codecs: map[uint32]*goavro.Codec{}}
	g := goka.DefineGroup(goka.Group(group),
		goka.Inputs(goka.Streams{goka.Stream(click), goka.Stream(tx), goka.Stream(prof)}, events, func(ctx goka.Context, msg any) {
			onEvent(ctx, msg.(*event), stage1, goka.Stream(delayTopic), goka.Stream(out))
		}),
		goka.Input(goka.Stream(checksTopic), jsonCodec[check]{}, func(ctx goka.Context, msg any) {
			onCheck(ctx, msg.(*check), goka.Stream(out))
		}),
		goka.Output(goka.Stream(delayTopic), jsonCodec[check]{}),
		goka.Output(goka.Stream(out), jsonCodec[trigger]{}),
		goka.Persist(jsonCodec[customer]{}),
	)
	proc, err := goka.NewProcessor(brokers, g, goka.WithTopicManagerBuilder(tmb),
		goka.WithStorageBuilder(storage.DefaultBuilder(dir)))
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}

	emitter, err := goka.NewEmitter(brokers, goka.Stream(checksTopic), jsonCodec[check]{},
		goka.WithEmitterTopicManagerBuilder(tmb))
	if err != nil {
		return fmt.Errorf("emitter: %w", err)
	}
	d := &delayer{}
	dg := goka.DefineGroup(goka.Group(group+"-delayer"),
		goka.Input(goka.Stream(delayTopic), jsonCodec[check]{}, func(ctx goka.Context, msg any) { d.add(ctx.Key(), msg.(*check)) }),
	)
	dproc, err := goka.NewProcessor(brokers, dg, goka.WithTopicManagerBuilder(tmb),
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
	// The first to end (an error, or all three at SIGTERM) ends the run;
	// the others follow ctx.
	first := <-errc
	cancel()
	wg.Wait()
	return errors.Join(first, emitter.Finish())
}

// customer is the group table's value: the cart and counters.
type customer struct {
	Events      int64     `json:"events"`
	Purchases   int64     `json:"purchases"`
	SpendMinor  int64     `json:"spend_minor"`
	CartItems   int32     `json:"cart_items"`
	CartValue   int64     `json:"cart_value"`
	CartChange  string    `json:"cart_change"` // event ID of the last cart change
	CartAt      time.Time `json:"cart_at"`
	LastSeen    time.Time `json:"last_seen"`
	CartTrigger string    `json:"cart_trigger"` // cart change already triggered
}

type check struct {
	Occurrence string    `json:"occurrence"`
	Due        time.Time `json:"due"`
	EventTime  time.Time `json:"event_time"`
}

type trigger struct {
	ID       string    `json:"id"`
	Rule     string    `json:"rule"`
	Customer string    `json:"customer"`
	Stage    int32     `json:"stage"`
	DueAt    time.Time `json:"due_at"`
	Items    int32     `json:"items"`
	Value    int64     `json:"value"`
}

func onEvent(ctx goka.Context, ev *event, stage1 time.Duration, delay, out goka.Stream) {
	c, _ := ctx.Value().(*customer)
	if c == nil {
		c = &customer{}
	}
	c.Events++
	if ev.Time.After(c.LastSeen) {
		c.LastSeen = ev.Time
	}
	switch ev.Type {
	case "add_to_cart":
		c.CartItems += ev.Quantity
		c.CartValue += int64(ev.Quantity) * ev.Price
		c.CartChange, c.CartAt = ev.ID, ev.Time
		ctx.Emit(delay, ctx.Key(), &check{Occurrence: ev.ID, Due: ev.Time.Add(stage1), EventTime: ev.Time})
	case "remove_from_cart":
		c.CartItems = max(c.CartItems-1, 0)
		if c.CartItems == 0 {
			c.CartValue = 0
		}
		c.CartChange, c.CartAt = ev.ID, ev.Time
		if c.CartItems > 0 {
			ctx.Emit(delay, ctx.Key(), &check{Occurrence: ev.ID, Due: ev.Time.Add(stage1), EventTime: ev.Time})
		}
	case "purchase":
		c.Purchases++
		c.SpendMinor += ev.Amount
		c.CartItems, c.CartValue, c.CartChange = 0, 0, ""
	}
	ctx.SetValue(c)
}

func onCheck(ctx goka.Context, ch *check, out goka.Stream) {
	c, _ := ctx.Value().(*customer)
	if c == nil || c.CartChange != ch.Occurrence || c.CartItems == 0 || c.CartTrigger == ch.Occurrence {
		return // bought, changed again, emptied, or already sent
	}
	c.CartTrigger = ch.Occurrence
	ctx.Emit(out, ctx.Key(), &trigger{ID: ctx.Key() + "/cart_abandoned/1/" + ch.Occurrence, Rule: "cart_abandoned",
		Customer: ctx.Key(), Stage: 1, DueAt: ch.Due, Items: c.CartItems, Value: c.CartValue})
	ctx.SetValue(c)
}

// delayer holds checks until the event time seen passes their due time.
type delayer struct {
	mu        sync.Mutex
	h         checkHeap
	watermark time.Time
}

type pendingCheck struct {
	key string
	c   check
}

type checkHeap []pendingCheck

func (h checkHeap) Len() int           { return len(h) }
func (h checkHeap) Less(i, j int) bool { return h[i].c.Due.Before(h[j].c.Due) }
func (h checkHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *checkHeap) Push(x any)        { *h = append(*h, x.(pendingCheck)) }
func (h *checkHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (d *delayer) add(key string, c *check) {
	d.mu.Lock()
	defer d.mu.Unlock()
	heap.Push(&d.h, pendingCheck{key, *c})
	if c.EventTime.After(d.watermark) {
		d.watermark = c.EventTime
	}
}

// tick re-emits due checks every 100 ms.
func (d *delayer) tick(ctx context.Context, em *goka.Emitter) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var due []pendingCheck
		d.mu.Lock()
		for d.h.Len() > 0 && !d.h[0].c.Due.After(d.watermark) {
			due = append(due, heap.Pop(&d.h).(pendingCheck))
		}
		d.mu.Unlock()
		for i := range due {
			if _, err := em.Emit(due[i].key, &due[i].c); err != nil {
				return fmt.Errorf("emit check: %w", err)
			}
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
