// Package backtest replays the retained input topics of a production
// cluster through two rules files, a baseline and a candidate, and reports
// how their triggers, suppressions and deferrals differ over a range of
// event time [From, To).
//
// It runs the real processor (processor.New and Run, with the production
// rules engine and contact policy), unchanged, once per rules file, against
// an in-process Kafka (kfake) seeded with copies of the retained input
// records. The production cluster is only read: no consumer group, no
// commit, no produce, no schema registered.
//
// What is approximate: the state as of From is rebuilt from the inputs
// retained before it (from the start of retention, or From minus a
// warm-up). Anything older than the topics' retention is missing, so a
// rule that needs older history (a once-only mark, a long window, a cap
// whose window reaches before the replay) may decide differently from the
// live run near the start of the range. Records are replayed in event-time
// order: a record that arrived late in the live run is not late here.
//
// The run ends deterministically: after the copied records, every input
// partition gets two end markers (synthetic customers, filtered out of the
// report) stamped past To plus the lateness, so that every timer due
// before To fires and the processor, with idle_advance off, has nothing
// left to do when it has consumed them.
package backtest
