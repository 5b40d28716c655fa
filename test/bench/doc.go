// Package bench holds the benchmarks that need Kafka: restore from the
// changelog today; throughput, latency and a peer on the same broker as they
// are added. They run on the real broker named by TRIGGERD_KAFKA_BROKERS
// (make bench starts one) or on kfake, and report their figures with
// b.ReportMetric; they assert no wall-clock time.
package bench
