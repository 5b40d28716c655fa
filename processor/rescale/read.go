package rescale

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readChangelog reads every old changelog partition from from[p] (0 when
// absent) to until[p], or when until is nil to the end it has now
// (read_committed: the records of aborted transactions are skipped),
// calling fn for each record in offset order per partition. done reports
// the offsets read so far. It returns the ends.
func (r *run) readChangelog(ctx context.Context, from, until map[int32]int64, fn func(*kgo.Record) error,
	done func(read int64)) (map[int32]int64, error) {
	ends := until
	if ends == nil {
		lso, err := r.adm.ListCommittedOffsets(ctx, r.src)
		if err == nil {
			err = lso.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("rescale: end offsets of %q: %w", r.src, err)
		}
		ends = map[int32]int64{}
		lso.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	}
	starts := map[int32]kgo.Offset{}
	last := map[int32]int64{}
	for p, e := range ends {
		if from[p] < e {
			starts[p] = kgo.NewOffset().At(from[p])
			last[p] = from[p] - 1
		}
	}
	if len(starts) == 0 {
		return ends, nil
	}
	cl, err := kgo.NewClient(append(r.base,
		kgo.ClientID("triggerd-rescale-read"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.src: starts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers come back, so that the read sees every offset up to
		// the end and knows it is there.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
	)...)
	if err != nil {
		return nil, fmt.Errorf("rescale: changelog client: %w", err)
	}
	defer cl.Close()
	var read int64
	for len(last) > 0 {
		pollCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, fmt.Errorf("rescale: reading the changelog %q: %w", r.src, ferr)
		}
		var err error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			l, ok := last[fp.Partition]
			if !ok || err != nil {
				return
			}
			for _, rec := range fp.Records {
				if rec.Offset >= ends[fp.Partition] {
					break
				}
				read += rec.Offset - l
				l = rec.Offset
				if rec.Attrs.IsControl() {
					continue
				}
				if err = fn(rec); err != nil {
					return
				}
			}
			if l >= ends[fp.Partition]-1 {
				delete(last, fp.Partition)
			} else {
				last[fp.Partition] = l
			}
		})
		if err != nil {
			return nil, err
		}
		if done != nil {
			done(read)
		}
	}
	return ends, nil
}
