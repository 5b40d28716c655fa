package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

// The repartition stage. A raw input (Config.Repartition) is read by a
// consumer group of its own (RepartitionGroup), balanced by kgo's
// cooperative-sticky balancer apart from the co-partitioned set, so every
// instance repartitions the raw partitions assigned to it, whatever their
// count. Each cycle polls the raw records, reads each one's customer ID with
// the input's decoder (schemas.Decoder.CustomerID: JSON scanned for the
// top-level customer_id, Avro read up to that field, nothing else built),
// and writes the record unchanged (value, timestamp, headers), keyed by
// customer ID under kafka.partitioner, to the internal topic
// (RepartitionTopic), which has the processor's partition count and which
// the workers consume like any co-partitioned input. A record without a
// customer ID, or that is not JSON, not framed Avro of a known schema, or
// cut short before its customer ID, goes to the dead-letter topic with the
// decoder's reason, as a full decode would give it. A record whose customer
// ID reads but whose other fields are bad reaches the worker of its
// customer, which decodes it in full and dead-letters it with its reason:
// nothing is lost, nothing bad is applied.
//
// Exactly-once: the records and the raw offsets commit in one transaction of
// the stage's own GroupTransactSession (transactional ID
// "<instance_id>-repartition"), so after a crash a raw record is in the
// internal topic exactly once, and the workers read it read_committed.
// At-least-once: produce, flush, then commit the raw offsets; a crash in
// between writes the records again, with the same event IDs, which the
// rules' dedupe of the workers absorbs.
//
// Order: the internal topic keeps the order of each raw partition, and each
// record carries its raw partition's number (header rawPartitionHeader).
// Events of one customer that a producer spread over several raw partitions
// (several sessions) arrive merged by arrival, as in Kafka Streams'
// repartition topics; the workers put them back in event-time order, each
// raw partition taken to be in order as any input partition is
// (repartition_order.go). The stage adds its cycle (a poll and a commit) to the
// latency of the raw inputs, which counts against the lateness with
// idle_advance on.

// repartitioner runs the stage for one Kafka session of the processor.
type repartitioner struct {
	p      *Processor
	log    *zap.Logger
	base   []kgo.Opt
	routes map[string]*route // by raw topic

	sess *kgo.GroupTransactSession // exactly-once; nil at-least-once
	cl   *kgo.Client

	mu         sync.Mutex                 // guards produceErr (written by promises) and lag
	produceErr error                      // the cycle's first produce error
	lag        map[string]map[int32]int64 // raw topic -> partition -> records behind its end

	purge purger // the internal topics' purge (repartition_purge.go)
}

// route is one raw input: where its records go and how they are read.
type route struct {
	raw, internal string
	dec           *schemas.Decoder
	// The cycle's counts, added to the metrics at commit.
	repartitioned, deadLettered int
}

// repartitionInstance is the stage's static member ID and transactional ID.
func (c *Config) repartitionInstance() string { return c.InstanceID + "-repartition" }

// startRepartition starts the stage when an input is raw, and returns the
// function that stops it (after the cycle in flight commits) and waits.
func (p *Processor) startRepartition(ctx context.Context, base []kgo.Opt) (stop func()) {
	raw := p.cfg.RawInputs()
	if len(raw) == 0 {
		return func() {}
	}
	r := &repartitioner{p: p, log: p.log.Named("repartition"), base: base, routes: map[string]*route{},
		lag: map[string]map[int32]int64{}}
	if rs := p.Rules(); p.cfg.Guarantee == AtLeastOnce && rs != nil && !rs.Dedupes() {
		// A crash between the stage's flush and its offset commit writes
		// the raw records again; only dedupe tells the copies apart.
		r.log.Warn("raw inputs at least once without dedupe in the rules: after a crash of the repartition stage "+
			"the workers may apply raw events twice (counters, caps and carts counted twice); "+
			"set dedupe in the rules file, or use guarantee exactly_once",
			zap.Strings("raw_inputs", raw), zap.String("rules", rs.Name()))
	}
	for i, t := range p.cfg.declaredInputs() {
		if p.cfg.isRaw(inputKeys[i]) {
			r.routes[t] = &route{raw: t, internal: p.cfg.RepartitionTopic(t), dec: p.decoders[i]}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// run runs sessions until ctx is done. A failed session (a transaction that
// could not end, a failed flush or offset commit) is closed and a new one
// starts from the committed raw offsets, as the processor's Run does; after
// maxSessionFailures in a row without a commit the processor stops.
func (r *repartitioner) run(ctx context.Context) {
	for failures := 0; ctx.Err() == nil; {
		committed, err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		var retry *retryableError
		switch {
		case err == nil:
			continue
		case errors.Is(err, kerr.FencedInstanceID):
			r.p.fail(r.p.errFenced(err))
			return
		case refused(err):
			r.p.fail(fmt.Errorf("processor: repartition stage: no retry can fix this (credentials, permissions or certificate): %w", err))
			return
		case errors.As(err, &retry):
			r.log.Warn("repartition cycle dropped on a retryable error; retrying", zap.Error(err), zap.Duration("backoff", retryBackoff))
			sleepCtx(ctx, retryBackoff)
			continue
		}
		if committed {
			failures = 0
		}
		failures++
		if failures > maxSessionFailures {
			r.p.fail(fmt.Errorf("processor: repartition stage: giving up after %d Kafka sessions in a row failed: %w", failures, err))
			return
		}
		backoff := time.Duration(1<<(failures-1)) * time.Second
		r.log.Warn("repartition session failed; starting a new one after a pause", zap.Error(err),
			zap.Int("failures_in_a_row", failures), zap.Duration("backoff", backoff))
		r.p.m.sessionRestarts.Inc()
		sleepCtx(ctx, backoff)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// session runs one Kafka session of the stage: it returns when ctx is done
// (nil) or on an error that the session cannot go on from, and says whether
// it committed anything.
func (r *repartitioner) session(ctx context.Context) (committed bool, err error) {
	cfg := &r.p.cfg
	codec, err := compressionCodec(cfg.Compression)
	if err != nil {
		return false, err
	}
	start := kgo.NewOffset().AtEnd()
	if cfg.StartFrom == "earliest" {
		start = kgo.NewOffset().AtStart()
	}
	topics := make([]string, 0, len(r.routes))
	for t := range r.routes {
		topics = append(topics, t)
	}
	opts := append(append([]kgo.Opt(nil), r.base...),
		kgo.WithHooks(repartitionWatch{r}),
		kgo.ConsumerGroup(cfg.RepartitionGroup()),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers of a transactional raw producer come back,
		// so the committed offsets pass them and the workers can tell the
		// raw input caught up (repartition_caughtup.go).
		kgo.KeepControlRecords(),
		kgo.FetchMaxPartitionBytes(cfg.FetchPartitionBytes),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.InstanceID(cfg.repartitionInstance()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(cfg.Partitioner.kgoHasher())),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(max(10_000, 2*cfg.PollRecords)),
		kgo.OnPartitionsRevoked(r.forget),
		kgo.OnPartitionsLost(r.forget),
	)
	if cfg.Guarantee == AtLeastOnce {
		r.cl, err = kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
		if err != nil {
			return false, fmt.Errorf("processor: repartition stage: kafka client: %w", err)
		}
	} else {
		r.sess, err = kgo.NewGroupTransactSession(append(opts,
			kgo.TransactionalID(cfg.repartitionInstance()),
			kgo.TransactionTimeout(cfg.TransactionTimeout),
		)...)
		if err != nil {
			return false, fmt.Errorf("processor: repartition stage: kafka client: %w", err)
		}
		r.cl = r.sess.Client()
		// As the processor does: fence a crashed predecessor's open
		// transaction now, not at the first produce.
		initCtx, cancel := context.WithTimeout(ctx, cfg.TransactionTimeout)
		_, _, err = r.cl.ProducerID(initCtx)
		cancel()
		if err != nil {
			r.close()
			return false, fmt.Errorf("processor: repartition stage: initializing the transactional producer: %w", err)
		}
	}
	defer r.close()
	r.log.Info("repartition stage started", zap.String("group", cfg.RepartitionGroup()), zap.Strings("raw_inputs", topics),
		zap.String("guarantee", string(cfg.Guarantee)))
	for ctx.Err() == nil {
		ok, err := r.cycle(ctx)
		committed = committed || ok
		if err != nil {
			return committed, err
		}
		r.purgeIfDue(ctx) // repartition_purge.go
	}
	return committed, nil
}

func (r *repartitioner) close() {
	if r.sess != nil {
		r.sess.Close()
	} else if r.cl != nil {
		r.cl.Close()
	}
	r.sess, r.cl = nil, nil
}

// cycle is one poll → repartition → commit cycle. It reports whether it
// committed.
func (r *repartitioner) cycle(ctx context.Context) (bool, error) {
	pollCtx, cancel := context.WithTimeout(ctx, r.p.cfg.Tick)
	var fetches kgo.Fetches
	if r.sess != nil {
		fetches = r.sess.PollRecords(pollCtx, r.p.cfg.PollRecords)
	} else {
		fetches = r.cl.PollRecords(pollCtx, r.p.cfg.PollRecords)
	}
	cancel()
	defer r.cl.AllowRebalance()
	if fetches.IsClientClosed() {
		return false, nil
	}
	fetches.EachError(func(t string, part int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			r.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", part), zap.Error(err))
		}
	})
	r.noteLag(fetches)
	if fetches.NumRecords() == 0 {
		return false, nil
	}
	if r.sess != nil {
		if err := r.sess.Begin(); err != nil {
			return false, fmt.Errorf("processor: repartition stage: begin transaction: %w", err)
		}
	}
	now := r.p.clock()
	r.takeProduceErr()
	var cycleErr error
	fetches.EachRecord(func(rec *kgo.Record) {
		if cycleErr == nil {
			cycleErr = r.route(rec, now)
		}
	})
	// The cycle in flight finishes even when ctx is done (graceful
	// shutdown): End gets its own bounded context.
	endCtx, endCancel := context.WithTimeout(context.WithoutCancel(ctx), r.p.cfg.TransactionTimeout)
	defer endCancel()
	flushErr := r.cl.Flush(endCtx)
	produceErr := r.takeProduceErr()
	if produceErr == nil {
		produceErr = flushErr
	}
	if produceErr != nil && unproducible(produceErr) {
		return false, errUnproducible(produceErr)
	}
	commit := cycleErr == nil && produceErr == nil
	if r.sess != nil {
		r.p.failpoint("repartition-before-end")
		committed, err := r.sess.End(endCtx, kgo.TransactionEndTry(commit))
		if committed {
			r.p.failpoint("repartition-after-end")
			r.count()
		} else {
			r.drop()
		}
		switch {
		case err != nil:
			return committed, fmt.Errorf("processor: repartition stage: ending transaction: %w", err)
		case cycleErr != nil:
			return false, cycleErr // aborted: the session rewound to the committed offsets
		case produceErr != nil:
			r.log.Warn("repartition transaction aborted: a produce failed; the records will be repartitioned again", zap.Error(produceErr))
		}
		return committed, nil
	}
	if !commit {
		// Nothing rewinds a plain consumer: a new session resumes from
		// the committed offsets (what was produced is written again).
		r.drop()
		return false, errors.Join(cycleErr, produceErr)
	}
	r.p.failpoint("repartition-before-end")
	if err := r.cl.CommitUncommittedOffsets(endCtx); err != nil {
		r.drop()
		return false, fmt.Errorf("processor: repartition stage: committing the raw offsets: %w", err)
	}
	r.p.failpoint("repartition-after-end")
	r.count()
	return true, nil
}

// route writes one raw record to its internal topic, or to the dead-letter
// topic when its customer ID cannot be read. An error is not the record's
// fault (the schema registry did not answer): the cycle is dropped.
func (r *repartitioner) route(rec *kgo.Record, now time.Time) error {
	if rec.Attrs.IsControl() {
		return nil // a transaction marker: only its offset is committed
	}
	rt := r.routes[rec.Topic]
	if rt == nil {
		return fmt.Errorf("processor: repartition stage: record of topic %q, which is no raw input", rec.Topic)
	}
	out, err := rt.routed(rec)
	if err != nil {
		var de *schemas.DecodeError
		if !errors.As(err, &de) {
			return &retryableError{fmt.Errorf("processor: repartition stage: decoding %s offset %d: %w", rec.Topic, rec.Offset, err)}
		}
		r.deadLetter(rt, rec, de.Reason, "raw input: the customer ID is read from the value's customer_id field, "+
			"and the value does not give one: "+err.Error(), now)
		return nil
	}
	r.cl.Produce(context.Background(), out, r.promise)
	rt.repartitioned++
	return nil
}

// routed is the internal topic's record of the raw record rec, or the
// decoder's error when rec's customer ID cannot be read. Only the customer
// ID is read (schemas.Decoder.CustomerID): the worker decodes the rest.
func (rt *route) routed(rec *kgo.Record) (*kgo.Record, error) {
	key, err := rt.dec.CustomerID(context.Background(), rec.Value)
	if err != nil {
		return nil, err
	}
	return rt.internalRecord(rec, key), nil
}

// internalRecord is rec keyed by key for the internal topic. The key may
// share rec.Value's bytes, which kgo does not reuse.
func (rt *route) internalRecord(rec *kgo.Record, key []byte) *kgo.Record {
	// The raw partition goes with the record, for the workers' event-time
	// bound of the internal topic (repartition_order.go). Last, so that
	// it wins over a header of that name the producer wrote.
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+1)
	hs = append(append(hs, rec.Headers...),
		kgo.RecordHeader{Key: rawPartitionHeader, Value: strconv.AppendInt(nil, int64(rec.Partition), 10)})
	return &kgo.Record{Topic: rt.internal, Key: key, Value: rec.Value, Headers: hs, Timestamp: rec.Timestamp}
}

// deadLetter writes a raw record the stage cannot route, with the headers
// every dead letter has (deadLetterRecord, output.go).
func (r *repartitioner) deadLetter(rt *route, rec *kgo.Record, reason, detail string, now time.Time) {
	r.cl.Produce(context.Background(), deadLetterRecord(r.p.cfg.Topics.DeadLetter, rec.Topic, rec, reason, detail, now,
		kgo.RecordHeader{Key: "dlq_stage", Value: []byte("repartition")}), r.promise)
	rt.deadLettered++
	r.p.m.deadLettered.WithLabelValues(rec.Topic, reason).Inc()
}

// takeProduceErr returns the cycle's first produce error and clears it.
func (r *repartitioner) takeProduceErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.produceErr
	r.produceErr = nil
	return err
}

// promise keeps the cycle's first produce error (promises run on kgo's
// goroutines).
func (r *repartitioner) promise(rec *kgo.Record, err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.produceErr == nil {
		r.produceErr = fmt.Errorf("producing to %s (key %d bytes, value %d bytes): %w", rec.Topic, len(rec.Key), len(rec.Value), err)
	}
}

// count adds the committed cycle's records to the metrics and the stats.
func (r *repartitioner) count() {
	for _, rt := range r.routes {
		r.p.m.repartitioned.WithLabelValues(rt.raw).Add(float64(rt.repartitioned))
		r.p.stats.deadLetters.Add(int64(rt.deadLettered))
		rt.repartitioned, rt.deadLettered = 0, 0
	}
}

// drop forgets the counts of a cycle that did not commit.
func (r *repartitioner) drop() {
	for _, rt := range r.routes {
		rt.repartitioned, rt.deadLettered = 0, 0
	}
}

// noteLag records, per raw partition polled, how far the stage is behind
// the partition's end, and exports the sum per topic.
func (r *repartitioner) noteLag(fetches kgo.Fetches) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 || fp.Err != nil {
			return
		}
		if r.lag[fp.Topic] == nil {
			r.lag[fp.Topic] = map[int32]int64{}
		}
		r.lag[fp.Topic][fp.Partition] = max(0, fp.LastStableOffset-(fp.Records[len(fp.Records)-1].Offset+1))
	})
	r.exportLag()
}

// forget drops the lag of partitions this instance no longer repartitions.
func (r *repartitioner) forget(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, ps := range revoked {
		for _, part := range ps {
			delete(r.lag[t], part)
		}
	}
	r.exportLag()
}

func (r *repartitioner) exportLag() {
	for t := range r.routes {
		var sum int64
		for _, n := range r.lag[t] {
			sum += n
		}
		r.p.m.repartitionLag.WithLabelValues(t).Set(float64(sum))
	}
}

// repartitionWatch tells the stage of a lost group session: a fenced
// static member (another process with this instance ID) stops the
// processor, as in the workers' group (faults.go); kgo rejoins otherwise.
type repartitionWatch struct{ r *repartitioner }

func (w repartitionWatch) OnGroupManageError(err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return
	}
	if errors.Is(err, kerr.FencedInstanceID) {
		w.r.p.fail(w.r.p.errFenced(err))
		return
	}
	w.r.log.Warn("the repartition stage lost its consumer group session; kgo rejoins", zap.Error(err))
}

// newRepartitionMetrics makes the repartition stage's series.
func (m *metrics) newRepartitionMetrics() {
	m.repartitioned = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "triggerd_repartition_records_total",
		Help: "Raw input records the repartition stage wrote to their internal topic (committed), by raw topic. Those it could not route are in triggerd_input_dead_lettered_total under the raw topic.",
	}, []string{"topic"})
	m.repartitionLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "triggerd_repartition_lag_records",
		Help: "Records of the raw input partitions this instance repartitions that the stage has not read yet, by raw topic.",
	}, []string{"topic"})
}
