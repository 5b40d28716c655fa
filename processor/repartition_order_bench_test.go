package processor

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkRawMerge measures queueing a raw input's internal records in
// event-time order when raw partitions arrive skewed: rawParts partitions,
// each in time order, delivered in chunks of chunk records, partition p's
// chunk stamped lag*p ms behind partition 0's. After each round the head is
// taken while it is at or before the bound, as a worker does: what stays
// queued is what the slowest partition holds back.
func BenchmarkRawMerge(b *testing.B) {
	const rawParts = 13
	for _, c := range []struct{ chunk, lag int }{{100, 0}, {100, 1000}, {1000, 10_000}, {1000, 100_000}} {
		b.Run(fmt.Sprintf("chunk=%d/lag=%dms", c.chunk, c.lag), func(b *testing.B) {
			recs := make([]*kgo.Record, rawParts)
			for p := range recs {
				recs[p] = &kgo.Record{Headers: []kgo.RecordHeader{{Key: rawPartitionHeader, Value: []byte(strconv.Itoa(p))}}}
			}
			in := &input{raw: &rawOrder{low: noTime}}
			in.raw.setParts(rawParts)
			next := make([]int64, rawParts)
			for p := range next {
				next[p] = int64(1_000_000 - p*c.lag)
			}
			b.ResetTimer()
			for n := 0; n < b.N; {
				for p := 0; p < rawParts && n < b.N; p++ {
					for k := 0; k < c.chunk && n < b.N; k++ {
						in.enqueue(queued{r: recs[p], ts: next[p]})
						next[p] += 10
						n++
					}
				}
				bound := in.raw.bound()
				for in.pending() > 0 && in.queue.peek().ts <= bound {
					in.queue.pop()
				}
				in.queue.compact()
			}
			b.ReportMetric(float64(in.pending()), "queued_at_end")
		})
	}
}
