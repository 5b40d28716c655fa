package backtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
)

// scratch is the in-process Kafka a backtest replays on, holding copies of
// the production inputs under the same topic names and partitions.
type scratch struct {
	cluster    *kfake.Cluster
	partitions int32
	// records is how many input records the scratch holds, end markers
	// included: a replay is done when the processor has consumed them all.
	records int64
	// copied counts the production records copied, by input topic.
	copied map[string]int64
	// earliest is the earliest event time copied (zero if none).
	earliest time.Time
}

func (s *scratch) close() { s.cluster.Close() }

// endMarkerPrefix starts the IDs of the synthetic customers that carry the
// end markers; their triggers are left out of every report.
const endMarkerPrefix = "triggerd.backtest.end-"

// seed copies the retained input records of src, with event times from
// warmFrom (zero: all) up to before until, to a new kfake cluster, then
// appends the end markers stamped until and until+1ms to every input
// partition. It reads src with a plain client: no group, no commit.
func seed(ctx context.Context, src processor.Config, warmFrom, until time.Time, log *zap.Logger, progress func(copied int64)) (*scratch, error) {
	if src.UsesAvro() {
		return nil, errors.New("backtest: avro inputs are not supported yet (the end markers and the scratch outputs would need the schema registry); replay JSON inputs")
	}
	opts, err := processor.ClientOptions(src, log)
	if err != nil {
		return nil, err
	}
	srcCl, err := kgo.NewClient(append(opts, kgo.ClientID("triggerd-backtest-reader"))...)
	if err != nil {
		return nil, fmt.Errorf("backtest: kafka client: %w", err)
	}
	defer srcCl.Close()
	adm := kadm.NewClient(srcCl)
	inputs := src.Inputs()
	starts, err := adm.ListStartOffsets(ctx, inputs...)
	if err != nil {
		return nil, fmt.Errorf("backtest: listing the inputs' start offsets: %w", err)
	}
	// The last stable offsets: what a read_committed reader can reach now.
	ends, err := adm.ListCommittedOffsets(ctx, inputs...)
	if err != nil {
		return nil, fmt.Errorf("backtest: listing the inputs' end offsets: %w", err)
	}
	if err := errors.Join(starts.Error(), ends.Error()); err != nil {
		return nil, fmt.Errorf("backtest: listing offsets: %w", err)
	}
	nparts := int32(-1)
	for _, t := range inputs {
		n := int32(len(ends[t]))
		if n == 0 {
			return nil, fmt.Errorf("backtest: input topic %q not found", t)
		}
		if nparts >= 0 && n != nparts {
			return nil, fmt.Errorf("backtest: the inputs are not co-partitioned (%q has %d partitions, another %d)", t, n, nparts)
		}
		nparts = n
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(nparts, inputs...))
	if err != nil {
		return nil, fmt.Errorf("backtest: in-process kafka: %w", err)
	}
	s := &scratch{cluster: cluster, partitions: nparts, copied: map[string]int64{}}
	if err := s.copyInputs(ctx, src, srcCl, starts, ends, warmFrom, until, progress); err != nil {
		cluster.Close()
		return nil, err
	}
	if err := s.appendEndMarkers(ctx, src, until); err != nil {
		cluster.Close()
		return nil, err
	}
	return s, nil
}

// writer is a client of the scratch cluster that puts each record on the
// partition it names.
func (s *scratch) writer() (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(s.cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
}

// copyInputs reads every input partition from its start to its end offset
// as listed before the copy (records written since are not replayed) and
// writes the records whose event time is in [warmFrom, until) to the same
// partition of the scratch, in the same order. A record that does not
// decode is copied as it is: the processor dead-letters it in the scratch,
// as it did live.
func (s *scratch) copyInputs(ctx context.Context, src processor.Config, srcCl *kgo.Client, starts, ends kadm.ListedOffsets,
	warmFrom, until time.Time, progress func(int64)) error {
	decoders := map[string]*schemas.Decoder{}
	formats := []schemas.Format{src.Encodings.Clickstream, src.Encodings.Transactions, src.Encodings.Profiles}
	sources := []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile}
	consume := map[string]map[int32]kgo.Offset{}
	left := map[string]map[int32]int64{} // the end offset of each partition still being read
	for i, t := range src.Inputs() {
		dec, err := schemas.NewDecoder(sources[i], formats[i], nil)
		if err != nil {
			return err
		}
		decoders[t] = dec
		for p, end := range ends[t] {
			start := starts[t][p].Offset
			if end.Offset <= start {
				continue
			}
			if consume[t] == nil {
				consume[t], left[t] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			consume[t][p] = kgo.NewOffset().At(start)
			left[t][p] = end.Offset
		}
	}
	if len(consume) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(append(srcCl.Opts(), kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return fmt.Errorf("backtest: kafka reader: %w", err)
	}
	defer rd.Close()
	wr, err := s.writer()
	if err != nil {
		return err
	}
	defer wr.Close()
	var ev schemas.Event
	var batch []*kgo.Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := wr.ProduceSync(ctx, batch...).FirstErr()
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("backtest: writing the scratch inputs: %w", err)
		}
		return nil
	}
	var total int64
	for len(left) > 0 {
		fetches := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("backtest: reading %s[%d]: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, reading := left[r.Topic][r.Partition]
			if !reading || r.Offset >= end {
				return
			}
			if r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
				if len(left[r.Topic]) == 0 {
					delete(left, r.Topic)
				}
			}
			if r.Attrs.IsControl() {
				return
			}
			if err := decoders[r.Topic].Decode(r.Value, &ev); err == nil {
				if ev.Time.Before(warmFrom) || !ev.Time.Before(until) {
					return
				}
				if s.earliest.IsZero() || ev.Time.Before(s.earliest) {
					s.earliest = ev.Time
				}
			}
			batch = append(batch, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value,
				Headers: r.Headers, Timestamp: r.Timestamp})
			s.copied[r.Topic]++
			s.records++
			total++
		})
		if len(batch) >= 5000 || len(left) == 0 {
			if err := flush(); err != nil {
				return err
			}
			if progress != nil {
				progress(total)
			}
		}
	}
	return flush()
}

// appendEndMarkers writes, on every partition of every input, an event of
// a synthetic customer of that partition stamped at, then one stamped
// at+1ms. With idle_advance off an input's progress is its latest event
// time, so once the processor has consumed them every record before at has
// been applied and every timer due before at minus the lateness has fired.
func (s *scratch) appendEndMarkers(ctx context.Context, src processor.Config, at time.Time) error {
	wr, err := s.writer()
	if err != nil {
		return err
	}
	defer wr.Close()
	sources := []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile}
	var recs []*kgo.Record
	for p := int32(0); p < s.partitions; p++ {
		cust := endMarkerCustomer(src.Partitioner, p, s.partitions)
		for i, topic := range src.Inputs() {
			enc, err := schemas.NewEventEncoder(ctx, sources[i], schemas.FormatJSON, nil, "")
			if err != nil {
				return err
			}
			for k, ts := range []time.Time{at, at.Add(time.Millisecond)} {
				ev := schemas.Event{Source: sources[i], ID: fmt.Sprintf("%s%d-%d-%d", endMarkerPrefix, p, i, k), Customer: cust,
					Type: "triggerd_backtest_end", Time: ts}
				if sources[i] == schemas.SourceProfile {
					ev.Type = schemas.ProfileUpdate
				}
				val, err := enc.Encode(nil, &ev)
				if err != nil {
					return fmt.Errorf("backtest: end marker: %w", err)
				}
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(cust), Value: val, Timestamp: ts})
			}
		}
	}
	if err := wr.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("backtest: writing the end markers: %w", err)
	}
	s.records += int64(len(recs))
	return nil
}

// endMarkerCustomer is a synthetic customer ID on partition p of n under
// the inputs' partitioner.
func endMarkerCustomer(pt processor.Partitioner, p, n int32) schemas.CustomerID {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s%d-%d", endMarkerPrefix, p, i)
		if pt.Partition([]byte(id), n) == p {
			return schemas.CustomerID(id)
		}
	}
}
