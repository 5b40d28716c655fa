package backtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
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
	// registry is the scratch's in-memory schema registry when an input
	// is avro (else nil): it holds, under their production IDs, the
	// writer schemas of the records copied, and the schemas of the end
	// markers under IDs of its own; regClient is its client.
	registry  *srfake.Registry
	regClient *sr.Client
	// schemaIDs are the production schema IDs of the avro records copied.
	schemaIDs map[int]bool
}

func (s *scratch) close() {
	s.cluster.Close()
	if s.registry != nil {
		s.registry.Close()
	}
}

// inputFormats are the encodings of the inputs, in the order of Inputs.
func inputFormats(src processor.Config) []schemas.Format {
	return []schemas.Format{src.Encodings.Clickstream, src.Encodings.Transactions, src.Encodings.Profiles}
}

// avroInputs reports whether any input is avro.
func avroInputs(src processor.Config) bool {
	for _, f := range inputFormats(src) {
		if f == schemas.FormatAvro {
			return true
		}
	}
	return false
}

// productionRegistry is a client of the production schema registry, which
// a backtest only reads: schemas by ID, never a registration.
func productionRegistry(src processor.Config) (*sr.Client, error) {
	if src.Registry.URL == "" {
		return nil, errors.New("backtest: an input is avro but kafka.registry.url is empty")
	}
	opts := []sr.ClientOpt{sr.URLs(src.Registry.URL)}
	if src.Registry.User != "" {
		opts = append(opts, sr.BasicAuth(src.Registry.User, src.Registry.Password))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("backtest: schema registry: %w", err)
	}
	return cl, nil
}

// endMarkerPrefix starts the IDs of the synthetic customers that carry the
// end markers; their triggers are left out of every report.
const endMarkerPrefix = "triggerd.backtest.end-"

// seed copies the retained input records of src, with event times from
// warmFrom (zero: all) up to before until, to a new kfake cluster, then
// appends the end markers stamped until and until+1ms to every input
// partition. It reads src with a plain client: no group, no commit.
func seed(ctx context.Context, src processor.Config, warmFrom, until time.Time, log *zap.Logger, progress func(copied int64)) (*scratch, error) {
	var prodReg *sr.Client
	if avroInputs(src) {
		var err error
		if prodReg, err = productionRegistry(src); err != nil {
			return nil, err
		}
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
	s := &scratch{cluster: cluster, partitions: nparts, copied: map[string]int64{}, schemaIDs: map[int]bool{}}
	if prodReg != nil {
		s.registry = srfake.New()
		if s.regClient, err = sr.NewClient(sr.URLs(s.registry.URL())); err != nil {
			s.close()
			return nil, fmt.Errorf("backtest: scratch schema registry: %w", err)
		}
	}
	if err := s.copyInputs(ctx, src, srcCl, prodReg, starts, ends, warmFrom, until, progress); err != nil {
		s.close()
		return nil, err
	}
	if err := s.copySchemas(ctx, prodReg); err != nil {
		s.close()
		return nil, err
	}
	if err := s.appendEndMarkers(ctx, src, until); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// copySchemas puts the production writer schemas of the avro records
// copied into the scratch registry under the same IDs, so that the replay
// decodes the copies as the live processor decoded the originals.
func (s *scratch) copySchemas(ctx context.Context, prodReg *sr.Client) error {
	if s.registry == nil {
		return nil
	}
	ids := make([]int, 0, len(s.schemaIDs))
	for id := range s.schemaIDs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		sch, err := prodReg.SchemaByID(ctx, id)
		if err != nil {
			return fmt.Errorf("backtest: schema %d of the copied records: %w", id, err)
		}
		s.registry.SeedSchema(fmt.Sprintf("triggerd-backtest-copied-%d", id), 1, id, sch)
	}
	return nil
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
func (s *scratch) copyInputs(ctx context.Context, src processor.Config, srcCl *kgo.Client, prodReg *sr.Client, starts, ends kadm.ListedOffsets,
	warmFrom, until time.Time, progress func(int64)) error {
	decoders := map[string]*schemas.Decoder{}
	avro := map[string]bool{}
	formats := inputFormats(src)
	sources := []schemas.Source{schemas.SourceClickstream, schemas.SourceTransaction, schemas.SourceProfile}
	consume := map[string]map[int32]kgo.Offset{}
	left := map[string]map[int32]int64{} // the end offset of each partition still being read
	for i, t := range src.Inputs() {
		var reg *sr.Client
		if formats[i] == schemas.FormatAvro {
			reg, avro[t] = prodReg, true
		}
		dec, err := schemas.NewDecoder(sources[i], formats[i], reg)
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
			// The Confluent framing: magic byte 0, then the schema ID.
			if avro[r.Topic] && len(r.Value) >= 5 && r.Value[0] == 0 {
				s.schemaIDs[int(binary.BigEndian.Uint32(r.Value[1:5]))] = true
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
	formats := inputFormats(src)
	var recs []*kgo.Record
	for p := int32(0); p < s.partitions; p++ {
		cust := endMarkerCustomer(src.Partitioner, p, s.partitions)
		for i, topic := range src.Inputs() {
			// In the input's own encoding; an avro marker's schema
			// is registered in the scratch registry only.
			var reg *sr.Client
			if formats[i] == schemas.FormatAvro {
				reg = s.regClient
			}
			enc, err := schemas.NewEventEncoder(ctx, sources[i], formats[i], reg, schemas.ValueSubject(topic))
			if err != nil {
				return fmt.Errorf("backtest: end marker encoder for %s: %w", topic, err)
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
