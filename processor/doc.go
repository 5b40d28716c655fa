// Package processor runs the trigger pipeline on Kafka: a consumer group over
// the co-partitioned input topics, one worker per assigned partition that
// decodes records, updates customer state through a write-back cache,
// evaluates the rules, fires due timers and produces triggers, and the commit
// protocol that makes all of it exactly-once.
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
// # Time
//
// Timers are due in event time. A partition's watermark is the minimum over
// the input topics of each topic-partition's progress (its highest record
// timestamp, or the wall clock when it is caught up and IdleAdvance is on),
// minus the allowed lateness. Records of one partition are processed in
// timestamp order across the input topics, and due timers fire before the
// first record that moves the watermark past them, so a backlog replays to the
// same triggers as live traffic.
//
// # Files
//
//	config.go     Config, defaults and validation
//	kafka.go      client options (TLS, SASL), topic checks and creation
//	processor.go  the poll / transaction cycle and rebalance bookkeeping
//	worker.go     one partition: decode, state, rules, timers, output
//	restore.go    changelog catch-up on assignment
//	repartition*.go  raw inputs: the repartition stage (its own group and
//	              transaction) that writes each raw record keyed by customer
//	              ID to an internal co-partitioned topic the workers consume
//	statesource.go  drops local state built from another changelog (a rescale)
//	metrics.go    Prometheus metrics
//	ops.go        /metrics, /healthz and /readyz
package processor
