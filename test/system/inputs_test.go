package system

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/test/harness"
)

// inputDuplicates reads the scenario's input topics to their end and returns
// the records whose value was already seen, as topic/partition@offset
// (first at partition@offset). Every workload event has an ID of its own, so
// two equal values are one event appended twice: the upstream producer's
// doing, which no processor without dedupe can tell from two events, and
// which the reference model (what the workload meant to write) cannot know.
// A scenario checks it so that such a failure names the producer, not the
// processor.
func (s *scenario) inputDuplicates() []string {
	t := s.t
	t.Helper()
	var dups []string
	for _, topic := range s.cfg.Inputs() {
		dups = append(dups, topicDuplicates(t, s.c.Client(t), topic)...)
	}
	return dups
}

func topicDuplicates(t *testing.T, cl *kgo.Client, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("input duplicates: end offsets of %s: %v", topic, err)
	}
	consume := map[int32]kgo.Offset{}
	left := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			consume[o.Partition] = kgo.NewOffset().AtStart()
			left++
		}
	})
	if left == 0 {
		return nil
	}
	rd, err := kgo.NewClient(append(cl.Opts(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		t.Fatalf("input duplicates: client: %v", err)
	}
	defer rd.Close()
	type at struct {
		part int32
		off  int64
	}
	seen := map[[sha256.Size]byte]at{}
	var dups []string
	for left > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("input duplicates: %s not read to its end within 2 minutes", topic)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("input duplicates: %s/%d: %v", topic, p, err) })
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if !r.Attrs.IsControl() {
					h := sha256.Sum256(r.Value)
					if first, ok := seen[h]; ok {
						dups = append(dups, fmt.Sprintf("%s/%d@%d (first at %d@%d)", topic, r.Partition, r.Offset, first.part, first.off))
					} else {
						seen[h] = at{r.Partition, r.Offset}
					}
				}
				if end, _ := ends.Lookup(topic, r.Partition); r.Offset == end.Offset-1 {
					left--
				}
			}
		})
	}
	return dups
}

// TestInputDuplicatesFound: the check finds a value appended twice, names
// where, and counts nothing else (so the broker-restart scenario's check can
// fail).
func TestInputDuplicatesFound(t *testing.T) {
	needBroker(t)
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 2)
	cl := c.Client(t)
	topic := cfg.Topics.Clickstream
	recs := []*kgo.Record{
		{Topic: topic, Partition: 0, Value: []byte(`{"event_id":"e1"}`)},
		{Topic: topic, Partition: 1, Value: []byte(`{"event_id":"e2"}`)},
		{Topic: topic, Partition: 0, Value: []byte(`{"event_id":"e3"}`)},
		{Topic: topic, Partition: 0, Value: []byte(`{"event_id":"e1"}`)},
	}
	w := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := w.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dups := topicDuplicates(t, cl, topic)
	want := topic + "/0@2 (first at 0@0)"
	if len(dups) != 1 || dups[0] != want {
		t.Fatalf("duplicates = %q, want [%q]", dups, want)
	}
	if dups := topicDuplicates(t, cl, cfg.Topics.Transactions); len(dups) != 0 {
		t.Fatalf("an empty topic has duplicates: %q", dups)
	}
}
