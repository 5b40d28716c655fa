// Package system holds the system tests: a deterministic workload of
// hundreds of thousands of events runs through the processor on a real
// Apache Kafka broker while processes are killed, and a checker computes,
// from the input alone and with its own code, the exact set of triggers a
// correct processor must write (the reference model).
//
// They need the real broker (make test-system starts it); without
// TRIGGERD_KAFKA_BROKERS they fail rather than pass silently.
package system
