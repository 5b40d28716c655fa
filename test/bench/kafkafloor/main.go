// Command kafkafloor is the benchmark's floor: what Kafka alone costs a
// Kafka-native stateful processor on the benchmark's workload, before it
// decodes, loads or changes any state or evaluates any rule. It consumes the
// three input topics in a consumer group, read_committed, and writes one
// changelog record per event (the event's own key and bytes, to the same
// partition of a compacted topic): the least state change a processor with
// a changelog can make. In exactly-once mode each poll is one transaction
// that also commits the consumed offsets; in at-least-once mode it flushes,
// then commits the offsets.
//
// Its client options are triggerd's where they bear on cost: the same fetch
// size per partition, records per poll, snappy, no linger. The benchmark
// (test/bench) builds it, runs it as a child process beside triggerd and
// goka on the same backlog, and reports its CPU per event: the part of
// triggerd's that no change to triggerd's own code can remove.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "seed brokers, comma-separated")
	group := flag.String("group", "", "consumer group (and transactional ID)")
	inputs := flag.String("inputs", "", "input topics, comma-separated")
	changelog := flag.String("changelog", "", "compacted topic to write one record per event to, co-partitioned with the inputs")
	guarantee := flag.String("guarantee", "exactly_once", "exactly_once or at_least_once")
	pollRecords := flag.Int("poll-records", 30000, "records per poll, so per transaction (triggerd's poll_records)")
	fetchBytes := flag.Int("fetch-partition-bytes", 128<<10, "fetch size per partition (triggerd's fetch_partition_bytes)")
	flag.Parse()
	var problems []string
	if *group == "" {
		problems = append(problems, "-group is required")
	}
	if *inputs == "" {
		problems = append(problems, "-inputs is required")
	}
	if *changelog == "" {
		problems = append(problems, "-changelog is required")
	}
	if *guarantee != "exactly_once" && *guarantee != "at_least_once" {
		problems = append(problems, fmt.Sprintf("-guarantee %q is not exactly_once or at_least_once", *guarantee))
	}
	if len(problems) > 0 {
		log.Fatalf("kafkafloor: %s", strings.Join(problems, "; "))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(strings.Split(*inputs, ",")...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxPartitionBytes(int32(*fetchBytes)),
		kgo.BlockRebalanceOnPoll(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()),
		kgo.MaxBufferedRecords(4 * *pollRecords),
	}
	var err error
	if *guarantee == "exactly_once" {
		err = exactlyOnce(ctx, opts, *group, *changelog, *pollRecords)
	} else {
		err = atLeastOnce(ctx, opts, *changelog, *pollRecords)
	}
	if err != nil && ctx.Err() == nil {
		log.Fatalf("kafkafloor: %v", err)
	}
}

// exactlyOnce runs one transaction per poll: the changelog records and the
// consumed offsets commit together.
func exactlyOnce(ctx context.Context, opts []kgo.Opt, group, changelog string, pollRecords int) error {
	sess, err := kgo.NewGroupTransactSession(append(opts,
		kgo.TransactionalID(group), kgo.TransactionTimeout(30*time.Second))...)
	if err != nil {
		return err
	}
	defer sess.Close()
	for ctx.Err() == nil {
		fs := poll(ctx, sess.PollRecords, pollRecords)
		if fs.NumRecords() == 0 {
			sess.Client().AllowRebalance()
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		produceErr := produceAll(sess.Client(), fs, changelog)
		// As triggerd does: flush, then commit only if every record
		// was acknowledged.
		flushErr := sess.Client().Flush(context.WithoutCancel(ctx))
		ok := flushErr == nil && produceErr.Load() == nil
		committed, err := sess.End(context.WithoutCancel(ctx), kgo.TransactionEndTry(ok))
		sess.Client().AllowRebalance()
		if err != nil {
			return fmt.Errorf("end transaction: %w", err)
		}
		if !committed {
			log.Printf("kafkafloor: transaction aborted (%v); its records are polled again", errors.Join(flushErr, produceErr.Load()))
		}
	}
	return nil
}

// atLeastOnce flushes each poll's records, then commits its offsets.
func atLeastOnce(ctx context.Context, opts []kgo.Opt, changelog string, pollRecords int) error {
	cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := poll(ctx, cl.PollRecords, pollRecords)
		if fs.NumRecords() == 0 {
			cl.AllowRebalance()
			continue
		}
		produceErr := produceAll(cl, fs, changelog)
		if err := cl.Flush(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		if err := produceErr.Load(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		if err := cl.CommitUncommittedOffsets(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("commit offsets: %w", err)
		}
		cl.AllowRebalance()
	}
	return nil
}

// poll takes up to max records, waiting at most 100 ms for the first.
func poll(ctx context.Context, pollRecords func(context.Context, int) kgo.Fetches, max int) kgo.Fetches {
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	fs := pollRecords(pctx, max)
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			log.Printf("kafkafloor: fetch %s/%d: %v", t, p, err)
		}
	})
	return fs
}

// firstError keeps the first produce error of a poll. The promises set it on
// kgo's goroutines; it is read after a flush.
type firstError struct{ err atomic.Pointer[error] }

func (f *firstError) Load() error {
	if e := f.err.Load(); e != nil {
		return *e
	}
	return nil
}

// produceAll writes one changelog record per polled record: its key and
// value, to the same partition.
func produceAll(cl *kgo.Client, fs kgo.Fetches, changelog string) *firstError {
	fe := &firstError{}
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			fe.err.CompareAndSwap(nil, &err)
		}
	}
	fs.EachRecord(func(r *kgo.Record) {
		cl.Produce(context.Background(), &kgo.Record{Topic: changelog, Partition: r.Partition, Key: r.Key, Value: r.Value}, promise)
	})
	return fe
}
