// Package workload generates realistic, deterministic customer traffic:
// Zipf-skewed activity over many customers, browsing sessions, carts that
// are bought or abandoned, and profile updates. The demo, the system tests
// and the benchmarks share it, so they exercise the same mix.
//
// A Generator is deterministic for a seed: the same Config gives the same
// events in the same order, which the system tests' reference model relies
// on.
package workload
