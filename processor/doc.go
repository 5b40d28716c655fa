// Package processor runs the trigger pipeline on Kafka: a consumer group over
// the co-partitioned input topics, one worker per assigned partition that
// decodes records, updates customer state through a write-back cache,
// evaluates the rules, fires due timers and produces triggers, and the commit
// protocol that makes all of it exactly-once (or at-least-once).
//
// # The cycle (exactly-once)
//
//	poll ─► every worker processes its partition's records and due timers
//	     ─► triggers, dead letters and changelog records are produced inside
//	        one Kafka transaction (GroupTransactSession)
//	     ─► End: the transaction commits the output and the consumed offsets
//	     ─► on commit, every worker applies its Pebble batch (NoSync: the
//	        changelog is the durable copy); on abort, it drops its cache and
//	        the next poll re-reads from the last committed offsets
//
// A crash between the commit and the Pebble apply loses nothing: on restart
// each worker first replays its changelog partition from the offset its
// Pebble state reflects, then processes input from the committed offsets.
//
// At-least-once mode has no transaction: a cycle's records are flushed, the
// offsets record that closes its changelog batch goes last, then the Pebble
// batches are applied and the group's offsets committed (atleastonce.go).
// The two modes are the two implementations of guarantee (guarantee.go).
//
// # Time
//
// Timers are due in event time. A record's event time is the event_time
// field of its payload, checked against the wall clock when the record is
// admitted (max_event_age, max_event_ahead); the Kafka record timestamp plays
// no part. Each input of a partition has a progress: the time of its first
// queued record, else the highest time it has shown. With idle_advance, the
// processor asks the broker for the inputs' end offsets (caughtup.go): an
// input whose every record up to the end had been polled when the question
// was asked at wall time c counts as having come as far as c - idle_grace,
// so the watermark follows the wall clock while inputs are idle. A
// partition's watermark is the least progress of its inputs minus the
// allowed lateness; it is unknown (no timer fires) while an input has shown
// nothing and has not been found caught up.
//
// Records of one partition are applied in event-time order across the input
// topics: a record goes once no other input can still deliver an earlier one
// (ties go to the input listed first), or once every other input has stayed
// caught up for idle_grace after the record arrived. Due timers fire before
// the first record that moves the watermark past them, so a backlog replays
// to the same triggers as live traffic. A record stamped behind timers that
// have already fired is late: applied, counted and noted in the customer's
// audit trail. eventtime.go has the details.
//
// # Files
//
//	processor.go           Processor, Options, New, readiness and the lock discipline
//	session.go             Run: a Kafka session, its client options, and a new one when it fails
//	faults.go              what takes the processor out of its group: fencing, lost sessions
//	cycle.go               the loop: poll, hand records to workers, run them, end the cycle
//	guarantee.go           the delivery guarantee's interface
//	exactlyonce.go         exactly-once: the transactional session and its cycle end
//	atleastonce.go         at-least-once: a plain client, the batch end and the group commit
//	assignment.go          rebalance callbacks; workers started (restored concurrently) and stopped
//	restore.go             changelog catch-up of assigned partitions: one client, applied concurrently
//	restorewait.go         why a restore waits: the open transaction holding the changelog
//	statesource.go         drops local state built from another changelog (after a rescale)
//	rescale_export.go      what the rescale command needs of the processor's settings
//	worker.go              one partition: its inputs, its cycle, timers, commit and abort
//	admit.go               decoding and validating polled records before they are queued
//	queue.go               an input's queued records: one FIFO, or per raw partition merged by time
//	eventtime.go           event-time merge of the inputs, progress and watermark
//	caughtup.go            end-offset checks that find idle inputs caught up
//	repartition.go         raw inputs: the repartition stage (its own group and transaction)
//	                       writing each raw record, keyed by customer ID, to an internal topic
//	repartition_config.go  the raw inputs' settings and internal topic names
//	repartition_topics.go  the internal topics' creation and checks
//	repartition_caughtup.go  when an internal topic has everything of its raw topic
//	repartition_order.go   an internal topic's event-time bound: the lowest of its raw partitions' times
//	repartition_purge.go   deleting internal-topic records the workers have committed
//	output.go              producing the cycle's records; the one builder of trigger-shaped records
//	erase.go               GDPR erasure of a customer and its erased record
//	suppress.go            the contact policy's suppression records
//	audit.go               the customer's audit trail of decisions
//	partitioner.go         the producers' partitioner by name (murmur2, crc32, fnv1a)
//	partitioner_misrouted.go  records on another partition than their customer's
//	balancer.go            the co-partitioned cooperative group balancer
//	owner.go               which instance owns a customer, for the admin API; erase requests
//	config.go              Config, defaults and validation
//	settings.go            configuration errors named by their YAML path
//	clientopts.go          the client options for other commands (backtest, rescale)
//	kafka.go               client options (TLS, SASL), compression, output partitioner, topic checks
//	topics.go              the topics report and input creation (CheckTopics)
//	topics_raw.go          the report's raw topics and their internal topics
//	kgolog.go              kgo's log lines worth keeping
//	rules.go               replacing the rules while running
//	metrics.go             Prometheus metrics
//	storemetrics.go        the state store's Pebble figures at scrape time
//	ops.go                 /metrics, /healthz and /readyz
package processor
