package processor

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"
)

// Purging the internal topics. They keep records for good (retention.ms -1:
// a record must stay until the workers have read it, however late they
// are), so the stage deletes what the workers no longer need, as Kafka
// Streams purges its repartition topics: every PurgeInterval it reads the
// workers' group offsets of the internal topics and deletes the records
// below them (DeleteRecords). A worker never reads below its group's
// committed offset again: exactly-once, the offsets commit with the state's
// changelog in one transaction; at-least-once, they commit after the state
// is written, so the state's own offsets are at or past them; records
// waiting for another input are in the state's held set, not read back from
// Kafka. Every instance's stage purges every internal partition: the request
// is idempotent, and the one whose turn comes first does it.

// defaultPurgeInterval is Kafka Streams' repartition.purge.interval.ms.
const defaultPurgeInterval = 30 * time.Second

// purgeInterval is how often the stage purges the internal topics.
func (c *Config) purgeInterval() time.Duration {
	if c.Repartition.PurgeInterval > 0 {
		return c.Repartition.PurgeInterval
	}
	return defaultPurgeInterval
}

// purger remembers, per internal partition, the offset up to which it last
// deleted, so that a partition the workers have not moved on is not asked
// again.
type purger struct {
	last    time.Time
	deleted map[string]map[int32]int64
	failing bool // the last purge failed (logged once per streak)
}

// purgeIfDue purges the internal topics when PurgeInterval has passed since
// the last purge (or the session's start).
func (r *repartitioner) purgeIfDue(ctx context.Context) {
	now := time.Now()
	if r.purge.last.IsZero() {
		r.purge.last = now
		return
	}
	if now.Sub(r.purge.last) < r.p.cfg.purgeInterval() {
		return
	}
	r.purge.last = now
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := r.purgeOnce(reqCtx)
	switch {
	case err != nil && !r.purge.failing:
		r.log.Warn("purging the internal topics failed; they grow until a purge succeeds", zap.Error(err))
	case err == nil && r.purge.failing:
		r.log.Info("purging the internal topics works again")
	}
	r.purge.failing = err != nil
}

// purgeOnce deletes the records of the internal topics below the workers'
// committed offsets.
func (r *repartitioner) purgeOnce(ctx context.Context) error {
	internal := make([]string, 0, len(r.routes))
	for _, rt := range r.routes {
		internal = append(internal, rt.internal)
	}
	committed, err := r.p.adm.FetchOffsetsForTopics(ctx, r.p.cfg.Group, internal...)
	if err != nil {
		return err
	}
	if r.purge.deleted == nil {
		r.purge.deleted = map[string]map[int32]int64{}
	}
	below := kadm.Offsets{}
	committed.Each(func(o kadm.OffsetResponse) {
		// At is -1 for a partition the workers never committed.
		if o.Err == nil && o.At > 0 && o.At > r.purge.deleted[o.Topic][o.Partition] {
			below.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.At, LeaderEpoch: -1})
		}
	})
	if len(below) == 0 {
		return nil
	}
	resp, err := r.p.adm.DeleteRecords(ctx, below)
	if err != nil {
		return err
	}
	var first error
	resp.Each(func(d kadm.DeleteRecordsResponse) {
		if d.Err != nil {
			if first == nil {
				first = d.Err
			}
			return
		}
		if r.purge.deleted[d.Topic] == nil {
			r.purge.deleted[d.Topic] = map[int32]int64{}
		}
		r.purge.deleted[d.Topic][d.Partition] = d.LowWatermark
	})
	return first
}
