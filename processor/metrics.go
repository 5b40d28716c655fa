package processor

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triggerd/triggerd/schemas"
)

// metrics are the processor's Prometheus series. Names follow
// triggerd_<subsystem>_<name>_<unit>.
type metrics struct {
	events           *prometheus.CounterVec // topic, partition
	deadLettered     *prometheus.CounterVec // topic, reason
	triggers         *prometheus.CounterVec // rule, channel
	timersFired      prometheus.Counter
	timersPend       *prometheus.GaugeVec // partition
	writeBack        *prometheus.GaugeVec // partition
	fireLag          prometheus.Histogram
	cycleSeconds     prometheus.Histogram
	cyclePhase       *prometheus.HistogramVec // phase: poll, process, flush, end, apply
	commits          *prometheus.CounterVec   // result: committed, aborted
	restored         *prometheus.CounterVec   // partition
	restoring        prometheus.Gauge
	restoreLeft      *prometheus.GaugeVec // partition
	sessionRestarts  prometheus.Counter
	changelogRepairs prometheus.Counter
	duplicates       *prometheus.CounterVec // topic
	evalErrors       prometheus.Counter
	erasures         prometheus.Counter
	rulesReloads     *prometheus.CounterVec // result: applied, rejected
	watermarkLag     *prometheus.GaugeVec   // partition
	inputLost        *prometheus.CounterVec // topic, partition
	late             *prometheus.CounterVec // topic
	waiting          *prometheus.GaugeVec   // partition
	suppressions     *prometheus.CounterVec // reason, channel
	deferrals        *prometheus.CounterVec // reason, channel
	changelog        *prometheus.CounterVec // kind, op: set, delete
	changelogBytes   *prometheus.CounterVec // kind
	misrouted        *prometheus.CounterVec // topic
	repartitioned    *prometheus.CounterVec // topic (raw)
	repartitionLag   *prometheus.GaugeVec   // topic (raw)

	// byPartition are the vectors with a partition label: an instance
	// exports their series only for the partitions it owns.
	byPartition []interface {
		DeletePartialMatch(prometheus.Labels) int
		Reset()
	}

	// policy counts committed suppressions by reason (deferrals as
	// "deferred") for Processor.Suppressions.
	policy struct {
		sync.Mutex
		byReason map[string]int64
	}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_input_events_total", Help: "Input records consumed, by topic and partition.",
		}, []string{"topic", "partition"}),
		inputLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_input_lost_records_total",
			Help: "Input records deleted by the broker (retention) before they were processed, by topic and partition. Anything above zero is data loss: raise the input topics' retention or fix the lag.",
		}, []string{"topic", "partition"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_input_dead_lettered_total", Help: "Input records sent to the dead-letter topic, by topic and reason.",
		}, []string{"topic", "reason"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_output_triggers_total", Help: "Triggers written (committed or pending commit), by rule and channel.",
		}, []string{"rule", "channel"}),
		timersFired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triggerd_timers_fired_total", Help: "Durable timers fired.",
		}),
		timersPend: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triggerd_timers_pending", Help: "Durable timers pending, by partition.",
		}, []string{"partition"}),
		writeBack: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triggerd_store_write_back_bytes",
			Help: "Customer records committed but not yet written to the state store (write-back), in bytes, by partition: after a crash the restore replays them from the changelog.",
		}, []string{"partition"}),
		fireLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "triggerd_timers_fire_lag_seconds", Help: "Wall time between a timer's due time and its firing.",
			// Bounds at the figures people set objectives and alerts on
			// (1 s, 5 min), and finer below a second, where a live
			// processor's lag is: powers of two put the p99 of a lag of
			// 0.5 s in a bucket that ended at 0.64 s.
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.5, 2, 5, 10, 30, 60, 300, 900, 3600},
		}),
		cycleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "triggerd_cycle_seconds", Help: "Duration of one poll/process/commit cycle.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		cyclePhase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "triggerd_cycle_phase_seconds", Help: "Duration of a cycle's phases: poll (the poll that brought records, waits included), process (rules and state, all partitions), flush (waiting for the produced records' acknowledgements), end (the transaction's offset commit and end; exactly-once only), apply (the Pebble batches).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"phase"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_transactions_total", Help: "Kafka transactions ended, by result.",
		}, []string{"result"}),
		restored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_restore_records_total", Help: "Changelog records replayed into local state, by partition.",
		}, []string{"partition"}),
		restoreLeft: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triggerd_restore_remaining_offsets", Help: "Changelog offsets a restoring partition has still to replay (0 when done), by partition.",
		}, []string{"partition"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_input_duplicates_total", Help: "Input events skipped as duplicates (an event ID seen within the dedupe window), by topic.",
		}, []string{"topic"}),
		erasures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triggerd_erasures_total", Help: "Customers erased (profile_erase events committed), each with an erased record on the trigger topic.",
		}),
		evalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triggerd_rules_eval_errors_total", Help: "Rule expressions that failed at run time and counted as false (the log has examples).",
		}),
		rulesReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_rules_reloads_total", Help: "Rules file reloads, by result: applied, or rejected (the running rules stayed).",
		}, []string{"result"}),
		changelogRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triggerd_changelog_repairs_total",
			Help: "Changelog batches a crash cut short (at-least-once mode) that a restore ignored and overwrote.",
		}),
		sessionRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triggerd_kafka_session_restarts_total",
			Help: "Kafka sessions replaced after a transaction could not begin or end (a broker restart, a fenced producer).",
		}),
		restoring: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "triggerd_restore_in_progress", Help: "Partitions being restored from the changelog.",
		}),
		suppressions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_policy_suppressions_total",
			Help: "Marketing triggers the contact policy suppressed (written to the suppressions topic, committed), by reason and channel.",
		}, []string{"reason", "channel"}),
		deferrals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_policy_deferrals_total",
			Help: "Marketing triggers the contact policy deferred to a durable timer (quiet hours), by reason and channel.",
		}, []string{"reason", "channel"}),
		changelog: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_changelog_records_total",
			Help: "Changelog records committed, by kind (customer, timer, held, offsets) and op (set, or delete: a tombstone).",
		}, []string{"kind", "op"}),
		changelogBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_changelog_bytes_total",
			Help: "Bytes of the changelog records committed (key and value), by kind.",
		}, []string{"kind"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triggerd_input_late_events_total",
			Help: "Input records that arrived after the watermark had passed their event time (timers the order puts after them had fired); they are applied when they arrive. By topic.",
		}, []string{"topic"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triggerd_records_waiting",
			Help: "Input records of the partition held back because another input may still deliver an earlier event (held in the state), as of the last end-offset check.",
		}, []string{"partition"}),
		watermarkLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triggerd_watermark_lag_seconds", Help: "Wall clock minus the partition's event-time watermark.",
		}, []string{"partition"}),
	}
	m.misrouted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "triggerd_input_misrouted_total",
		Help: "Input records on another partition than their customer ID's under kafka.partitioner, dead-lettered (misrouted) and not applied, by topic. Above zero: the producers use another partitioner (set kafka.partitioner to theirs, or configure theirs).",
	}, []string{"topic"})
	m.policy.byReason = map[string]int64{}
	m.byPartition = append(m.byPartition, m.events, m.inputLost, m.timersPend, m.writeBack, m.restored, m.restoreLeft, m.watermarkLag, m.waiting)
	// The alerts watch these with increase() or rate(), which see nothing
	// of a series that first appears at 1: the first rejected reload or
	// aborted transaction after a start would go unnoticed. Every label
	// value known at start is exported at 0; the per-partition ones are
	// created when the partition is assigned (newWorker).
	for _, r := range []string{"applied", "rejected"} {
		m.rulesReloads.WithLabelValues(r)
	}
	for _, r := range []string{"committed", "aborted"} {
		m.commits.WithLabelValues(r)
	}
	m.newRepartitionMetrics()
	if reg != nil {
		reg.MustRegister(m.repartitioned, m.repartitionLag)
		reg.MustRegister(m.events, m.inputLost, m.deadLettered, m.triggers, m.timersFired, m.timersPend, m.writeBack, m.fireLag,
			m.cycleSeconds, m.cyclePhase, m.commits, m.restored, m.restoring, m.restoreLeft, m.sessionRestarts, m.changelogRepairs, m.duplicates, m.evalErrors, m.erasures, m.rulesReloads, m.watermarkLag,
			m.late, m.waiting, m.suppressions, m.deferrals, m.changelog, m.changelogBytes, m.misrouted)
	}
	return m
}

// deadLetterReasons are the values of the reason label of
// triggerd_input_dead_lettered_total: the decoders' (schemas.Reason*) and
// the worker's own. A test checks the list against both.
var deadLetterReasons = []string{
	schemas.ReasonBadFraming, schemas.ReasonUnknownSchema, schemas.ReasonTruncated, schemas.ReasonTrailingBytes,
	schemas.ReasonMalformedAvro, schemas.ReasonInvalidJSON, schemas.ReasonWrongSchema, schemas.ReasonMissingCustomerID,
	schemas.ReasonMissingEventID, schemas.ReasonMissingType, schemas.ReasonBadField,
	"key_mismatch", "absurd_timestamp", "unknown_type", "misrouted",
}

// initInputs exports at 0 the dead-letter and duplicate counters of every
// input topic, for the alerts (see newMetrics).
func (m *metrics) initInputs(topics []string) {
	for _, t := range topics {
		for _, r := range deadLetterReasons {
			m.deadLettered.WithLabelValues(t, r)
		}
		m.duplicates.WithLabelValues(t)
	}
}

// forgetPartition deletes the series of a partition this instance no longer
// owns: its new owner exports them, and a sum over instances (pending
// timers, write-back bytes, lag) must count the partition once.
func (m *metrics) forgetPartition(part int32) {
	l := prometheus.Labels{"partition": strconv.Itoa(int(part))}
	for _, v := range m.byPartition {
		v.DeletePartialMatch(l)
	}
}

// forgetPartitions deletes the series of every partition: the instance owns
// none (its Kafka session failed).
func (m *metrics) forgetPartitions() {
	for _, v := range m.byPartition {
		v.Reset()
	}
}
