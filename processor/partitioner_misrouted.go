package processor

import (
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Misrouted records. A customer's state lives on the partition that
// kafka.partitioner gives its ID. A record that a producer put on another
// partition (a producer with another partitioner: librdkafka's CRC32
// against Java's murmur2) would start a second, partial record of the
// customer there, which the admin API does not find and an erase does not
// reach. So it is never applied: it is dead-lettered as "misrouted",
// counted, and logged once per topic and hour with the fix.

// misrouteLogEvery is how often a topic's misrouted records are logged.
const misrouteLogEvery = time.Hour

// misrouteLog throttles the warning; workers of several partitions share it.
type misrouteLog struct {
	log         *zap.Logger
	partitioner Partitioner
	sync.Mutex                       // guards last and since
	last        map[string]time.Time // topic -> when it was last logged
	since       map[string]int64     // topic -> misrouted records since then
}

// initMisrouted creates the misrouted counter of every input at 0, so that
// an alert on its increase sees the first one.
func (p *Processor) initMisrouted() {
	for _, t := range p.cfg.Inputs() {
		p.m.misrouted.WithLabelValues(t)
	}
	p.misroutes.log, p.misroutes.partitioner = p.log, p.cfg.Partitioner
	p.misroutes.last = map[string]time.Time{}
	p.misroutes.since = map[string]int64{}
}

// misrouted dead-letters r and reports true when r is not on the
// partition of its key (the customer ID, checked before) under the
// configured partitioner.
func (w *worker) misrouted(in *input, r *kgo.Record, now time.Time) bool {
	n := w.partitions.Load()
	if n <= 0 {
		return false // not known yet: no worker runs before it is
	}
	want := w.cfg.Partitioner.Partition(r.Key, n)
	if want == r.Partition {
		return false
	}
	detail := "the record is on partition " + strconv.Itoa(int(r.Partition)) + " but kafka.partitioner " +
		string(w.cfg.Partitioner) + " puts its customer ID on partition " + strconv.Itoa(int(want)) +
		": the producer uses another partitioner"
	w.deadLetter(in, r, "misrouted", detail, now,
		kgo.RecordHeader{Key: "dlq_expected_partition", Value: strconv.AppendInt(nil, int64(want), 10)},
		kgo.RecordHeader{Key: "dlq_actual_partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: "dlq_partitioner", Value: []byte(w.cfg.Partitioner)})
	w.m.misrouted.WithLabelValues(in.topic).Inc()
	w.misroutes.warn(in.topic, r.Partition, want, now)
	return true
}

// warn writes the warning for topic at most once per misrouteLogEvery, with
// the number of misrouted records since the last.
func (l *misrouteLog) warn(topic string, got, want int32, now time.Time) {
	l.Lock()
	defer l.Unlock()
	l.since[topic]++
	if last, ok := l.last[topic]; ok && now.Sub(last) < misrouteLogEvery {
		return
	}
	l.log.Warn("input records are on other partitions than their customer IDs: dead-lettered as misrouted, not applied; "+
		"set kafka.partitioner to the producers' partitioner (crc32 for librdkafka clients: Python confluent-kafka, kcat, .NET), "+
		"or configure the producers' (librdkafka: partitioner=murmur2_random; Java: the default)",
		zap.String("topic", topic), zap.String("partitioner", string(l.partitioner)),
		zap.Int32("example_partition", got), zap.Int32("example_expected_partition", want),
		zap.Int64("records", l.since[topic]), zap.Duration("next_line_in", misrouteLogEvery))
	l.last[topic] = now
	l.since[topic] = 0
}
