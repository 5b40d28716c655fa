// Package harness is what the end-to-end and system tests share: the Kafka
// they run on (in-process kfake, or the real broker named by
// TRIGGERD_KAFKA_BROKERS), producers of events, a reader of committed
// triggers, and the processor run in-process or as a child process that can
// be killed. It computes nothing the tests assert: expected results are the
// tests' own.
package harness
