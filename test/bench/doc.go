// Package bench holds the benchmarks that need Kafka. They run on the real
// broker named by TRIGGERD_KAFKA_BROKERS (make bench starts one) and on
// kfake, print their figures and report them with b.ReportMetric; they
// assert no wall-clock time.
//
//   - BenchmarkWorkload: the workload (Zipf-skewed customers, the
//     clickstream/transaction/profile mix, ~300-byte Avro events, 12
//     partitions) drained by the goka peer (test/peer/goka) and by
//     `triggerd run` in both guarantees with the full example rules and
//     contact policy, after a restore of a seeded changelog; then events
//     produced flat out while it runs (the end-to-end maximum), then live
//     traffic at half that maximum for latency and timer fire lag (two
//     probe rules: one fires at once on every purchase, one 2 s after one
//     purchase in ten; a read_committed consumer times their triggers).
//     One table, and the line vs_goka: events_per_s ours=N goka=M ratio=R.
//     Before those runs, triggerd drains the same backlog doing the peers'
//     work (rows "triggerd cart-only <mode>": the cart rule alone, no
//     contact policy, no seeded state), compared with the peers in
//     cart-only vs_goka and vs_kstreams lines.
//     On the real broker also the Kafka Streams peer (test/peer/kstreams,
//     built with Maven; kstreams_test.go) in both guarantees, its triggers
//     checked against the backlog's own cart check, and a vs_kstreams
//     line per guarantee.
//     Its "kafka floor" rows are test/bench/kafkafloor, in each mode, on
//     the same backlog: the inputs consumed with triggerd's client
//     settings and one changelog record written per event, nothing
//     decoded, stored or evaluated. Their CPU per event is the part of
//     a processor's that Kafka and its client take, which no change to
//     triggerd's own code can remove; the rest of triggerd's is its own.
//     Before it, each phase logs from the processor's /metrics its cycles
//     (events per cycle, milliseconds per phase), the store's figures
//     (WAL bytes, flushes, compactions, cache hits) and the changelog
//     records per event by kind (customer, timer, held, offsets), which
//     the store's entries follow.
//   - BenchmarkRestore: changelog restore rate of one partition.
//   - BenchmarkRescale: `triggerd rescale` of a stopped deployment's
//     changelog (BENCH_RESCALE_CUSTOMERS customers, 1,000,000 by default)
//     from 4 to 8 partitions, in customers per second.
//   - BenchmarkProfileDrain: the drain in-process on kfake, for pprof.
//
// Sizes and switches come from the environment (settings_test.go):
// BENCH_CLUSTERS (real,kfake), BENCH_MODES (exactly_once,at_least_once),
// BENCH_CUSTOMERS, BENCH_EVENTS, BENCH_STATE_CUSTOMERS (BENCH_KFAKE_STATE_CUSTOMERS
// on kfake, at most 2,000,000 by default: kfake holds the changelog in the
// benchmark's memory), BENCH_LIVE, BENCH_LIVE_RATE (events/s; default half
// the end-to-end maximum the run measured),
// BENCH_WARMUP, BENCH_SATURATE, BENCH_LATENESS, BENCH_IDLE_GRACE (the
// processor's kafka.idle_grace; 0 weighs what the grace costs), BENCH_GOKA (0 skips the peer), BENCH_OURS (0 skips triggerd's own runs), BENCH_CART_ONLY (0 skips triggerd on the peers' work: the cart rule alone, no policy, no seeded state), BENCH_FLOOR (0 skips the Kafka floor), BENCH_COMPRESSION (the
// processor's kafka.compression, default snappy), BENCH_WRITE_BACK_COMMITS
// (the processor's state.write_back_commits; 1 is write-through, to
// compare), BENCH_CACHED_CUSTOMERS (the processor's state.cached_customers),
// BENCH_SETTLE=1 (restore
// with a processor on empty inputs and wait until Pebble stops compacting
// before the drain, to weigh what the restore leaves behind), and
// BENCH_PPROF=dir with BENCH_PPROF_SECONDS to write CPU profiles of the
// processor child's drain and live phases (and of the raw rows' runs, from
// the process's start) and a heap profile after the saturation phase
// (through ops.pprof). BENCH_FULL=0 leaves out triggerd's full rows (the
// raw rows stay, to measure them alone). BENCH_BROKER_PID (make bench sets
// it) names the real broker's process, so that each drain also says how
// much CPU the broker spent per event, next to the processor's, this
// benchmark process's and the rest of the machine's, and how busy the
// machine was: which part of the machine a rate ran out of. The processor is built as the
// release image builds it, without cgo; TRIGGERD_TEST_CGO=1 builds it with
// cgo, to compare.
package bench
