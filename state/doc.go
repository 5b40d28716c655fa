// Package state keeps the per-customer state, the durable timers and the held
// input records of the partitions this process owns, in one embedded Pebble
// store. It is the only package that imports Pebble.
//
// # Pebble is a cache of the changelog
//
// The durable copy of the state is a compacted changelog topic in Kafka, with
// one partition per input partition. The processor works in batches (one per
// poll): it reads and updates customers, timers and held records through a
// Partition, gets the batch's changes from Partition.Changes (coalesced: the
// last value per key), produces them to the changelog inside its Kafka
// transaction, and only when the transaction commits calls Partition.Commit,
// which writes the batch to Pebble in one atomic Pebble batch together with
// the input offsets and the changelog offset it reflects. If the transaction
// aborts, Partition.Abort drops the batch.
//
// So Pebble never holds a change that Kafka does not, and it needs no fsync:
// commits use NoSync. The WAL is on, so a crash (of the process or the
// machine) loses at most the last batches, each in full: Pebble is left at
// the state after some earlier batch, with that batch's offsets, and is
// behind Kafka, never inconsistent with it. After a restart, or when a
// partition is assigned, the worker replays the changelog from the stored
// changelog offset + 1 to its end with Partition.ApplyChangelog, which
// rebuilds both timer indexes, the held records and both counts, and
// FlushRestore.
//
// # Write-back of customer records
//
// A commit does not write its customer records to Pebble: it keeps them in
// memory, encoded (the bytes it gave the changelog), and every
// Config.WriteBackCommits commits, or when they pass Config.WriteBackBytes,
// writes them all in that commit's Pebble batch. Activity is Zipf-skewed, so
// the records a commit rewrites are mostly the same hot customers, and they
// are the largest (a benchmark customer with 12% of the events had a 15 KB
// record, and the event-weighted mean record was 8 KB): written once in 16
// commits instead of 16 times, they stop being most of what Pebble's WAL,
// memtables and compactions carry. Timers, held records and erasures are
// written at every commit as before.
//
// The stored offsets record then says how far Pebble holds everything
// (Offsets.Persisted): the last commit when nothing is in write-back, else
// the last commit before the oldest record in write-back. A restore replays
// from there, so after a crash it also applies the records of the commits
// since, which Pebble already has (applying a record again is harmless); a
// clean Close writes the write-back first, and a restart restores nothing.
// Reads go to the batch, the customer cache, the write-back, then Pebble;
// ReadCustomer reads the write-back and its Pebble snapshot under the lock
// Commit holds, so it still sees whole commits. ScanPartition shows Pebble
// only. WriteBackCommits = 1 writes every commit's records (write-through).
//
// # Key layout
//
// Every key starts with the partition number, 4 bytes big-endian, so that a
// partition's keys are one contiguous range (a revoked partition is one range
// deletion) and the partitions never interleave.
//
//	| key                                  | value                                   |
//	|--------------------------------------|-----------------------------------------|
//	| <p> 'c' <customer ID>                | customer record (see Record encoding)   |
//	| <p> 't' <due> <esc(customer)> <ID>   | timer record: the time-ordered index    |
//	| <p> 'r' <esc(customer)> <ID>         | <due>: the per-customer reverse index;  |
//	|                                      | empty = not pending (see below)         |
//	| <p> 'h' <input> <offset>             | held input record (see Held records)    |
//	| <p> 'm' "offsets"                    | offsets record: input topic -> next     |
//	|                                      | offset, event-time progress (offsets.go)|
//	|                                      | and the changelog offset                |
//	| <p> 'm' "timers"                     | pending-timer count, 8 bytes big-endian |
//	| <p> 'm' "held"                       | held-record count, 8 bytes big-endian   |
//	| 0xFFFFFFFF 'm' "layout"              | key layout version, 4 bytes (store-wide)|
//
// <p> is the partition (uint32 big-endian; Kafka partitions are int32 >= 0,
// so the store-wide prefix 0xFFFFFFFF is never a partition).
//
// <due> is the timer's due time in unix milliseconds with the sign bit
// flipped, 8 bytes big-endian, so that keys sort by time (times before 1970
// included). Timers keep millisecond precision, like Kafka timestamps.
//
// esc(customer) is the customer ID with each 0x00 byte written as 0x00 0xFF,
// ended by 0x00 0x01. It sorts like the ID itself and marks where the ID ends,
// so the index orders timers of equal due time by customer, then timer ID,
// and all timers of one customer share the prefix <p> 'r' esc(customer) (how
// Erase finds them). (A 2-byte length prefix would be simpler but would sort
// ties by ID length first.)
//
// Firing is a range scan from the front of the 't' range; Schedule, Cancel
// and rescheduling are a point read of the 'r' entry plus two index writes.
// Nothing scans the whole state while it runs; opening a partition scans
// its 'r' range once, to build a Bloom filter of the pending timers' refs
// (timerfilter.go), and the point read is skipped when the filter does not
// have the ref or the timer cache (cache.go) knows the timer: most Schedules
// are of new timers, and most Cancels of timers that are not pending.
//
// A batch's timer changes are kept in memory (an overlay that reads fall
// through to Pebble) and written once per timer at Commit: a hot customer's
// timer moved by 100 events of a poll costs one index update. Cancelling or
// firing a timer deletes its 't' entry but sets its 'r' entry to empty
// rather than deleting it: a Pebble point read whose newest version of a key
// is a deletion walks every older version of that key in the memtable, and a
// hot customer's 'r' key gets a version in nearly every batch. Erase deletes
// them for real. The 't' scans avoid the same cost differently: each scan
// starts at a floor kept in memory (no pending timer is due before it), so
// the deletions that fired and moved timers leave at the front of the index
// are seeked past, not walked.
//
// Measured with BenchmarkBatch (2 cores, 1,000 events a batch, Zipf over
// 100k customers, read-modify-write + Schedule + Cancel per event): a Pebble
// indexed batch holding every intermediate timer write, with deletions, ran
// at 5k events/s; with empty 'r' values, 56k; with the overlay, 107k with
// deletions and 113k-143k with empty values (the spread is other load on the
// machine).
//
// # Held records
//
// The worker merges its input topics in event-time order, so a record that is
// ahead of another input's progress waits, possibly across batches. Its
// offset is committed with the batch that read it, so the waiting record is
// state: Partition.Hold stores it in the batch, Partition.Release removes it
// once processed, and Partition.Held lists the committed ones (at takeover,
// to rebuild the worker's queues). <input> is one byte (the processor's
// schemas.Source) and <offset> the record's Kafka offset (>= 0), 8 bytes
// big-endian, so the 'h' range is ordered by input, then offset. The value is
// a format version byte, the record timestamp in unix milliseconds (zigzag
// varint), the key's length (uvarint) and the key, then the value bytes to the
// end (a nil and an empty key or value are stored alike): a fixed layout, not
// the fields of Record encoding, so any change to it needs a new version
// byte. Held records go
// through an overlay like timers; a key is written once when held and deleted
// once when released, never rewritten, so releases are real deletions.
//
// # Changelog records
//
// The changelog key of a record is its Pebble key without the 4-byte
// partition prefix (the changelog partition is the same number):
//
//	| changelog key                 | value                                       |
//	|-------------------------------|---------------------------------------------|
//	| 'c' <customer ID>             | customer record; tombstone = erased         |
//	| 'r' <esc(customer)> <ID>      | timer record; tombstone = cancelled/fired/  |
//	|                               | erased                                      |
//	| 'h' <input> <offset>          | held record; tombstone = released           |
//	| 'm' "offsets"                 | offsets record with changelog offset -1     |
//
// A timer travels under its reverse-index key, not its time-ordered one: the
// key does not change when the timer moves, so log compaction keeps exactly
// one record per pending timer, and the record (which holds the due time) is
// enough to rebuild both indexes. The changelog offsets record cannot hold its
// own offset; a restore takes the offset of the last record applied.
// The 't' entries and the timer and held-record counts are derived and never
// sent.
//
// # Record encoding
//
// Records (customer, timer, offsets) are hand-written, compact and
// allocation-free to write: a format version byte, then fields in a subset of
// the protocol-buffers wire format: a uvarint tag (field number << 3 | wire
// type), then a zigzag varint (wire type 0) or a uvarint length and bytes
// (wire type 2: strings, nested records, and tuples for values that never
// grow: a time is (unix seconds, nanoseconds), a date (year, month, day),
// money (minor units, currency)). Zero fields are omitted. Times are stored as
// instants and come back in UTC.
//
// Customer records are the bulk of what the store and the changelog write
// (a busy customer's record is rewritten in every batch), so format 2 packs
// them: the version byte is followed by a base time (the record's LastSeen),
// and every time in the record is compact: milliseconds from the base,
// usually 4 or 5 bytes where (unix seconds, nanoseconds) took 10 (see
// appendCTime in wire.go). The dedupe window keeps 8-byte fingerprints of
// event IDs (schemas.EventKey) in one packed field, a run whose cause is its
// occurrence does not write the event ID twice, a 32-digit hex trigger ID in
// the audit trail is stored as its 16 bytes, and the names a record repeats
// (rule IDs, channels, actions, reasons, policies) are written once and then
// by index (see names in wire.go). The customer records of a benchmark run
// (532,181 of them, rewritten in format 2) shrank to 58% of their size, the
// busiest (over 10 KB) from 14.7 to 8.4 KB on average.
// Format 1 records (with their event IDs) still decode; a release before
// format 2 refuses format 2 records with an error that names the version, so
// rolling back past it needs the state rebuilt (see the README's operations
// section).
//
// How a new release reads the old format, and the other way round:
//   - A new field gets a new field number; readers skip fields they do not
//     know (by wire type), and a missing field decodes as its zero value.
//     The version byte does not change.
//   - A field number is never reused or given another type; a retired field
//     stays reserved in its codec file (codec.go lists them, with the
//     checklist for adding a customer field).
//   - A change the fields cannot express (a new wire type, a different
//     framing) gets a new version byte; the decoder keeps a case for every
//     version ever written, and a reader refuses a version it does not know
//     (rather than misreading it).
//   - A change of the key layout bumps the store-wide layout version, which
//     Open checks (version 2 added the held records; see store.go).
//
// # Ownership and concurrency
//
// A Store is safe for concurrent use. A Partition is owned by its partition
// worker: it takes no locks, and its batch state (cache, buffers) is reused
// from batch to batch. Customer pointers and Changes buffers are valid until
// the next Commit or Abort.
//
// Others read through the Store, never through a Partition: ReadCustomer
// (the admin API) and ScanPartition (verification) read the committed state
// from a Pebble snapshot, which sees whole batches only, so they never race
// the worker and never see a batch that may still abort. ReadCustomer also
// reads the partition's write-back, under the lock Commit takes to change
// it; ScanPartition, a raw view of Pebble, does not (a customer record may
// be some commits behind there; an erasure never is).
//
// # Locks
//
// Two locks, always taken in this order (a goroutine holding the second
// never takes the first):
//
//  1. Store.mu: the partition handles and the closed flag. It is held only
//     for work that does not grow with the state: a map lookup, taking a
//     Pebble snapshot, copying one write-back record, a range deletion.
//     Never across a scan or a read of Pebble: a new handle loads (and
//     scans its timers) outside it, ReadCustomer and ScanPartition read
//     their snapshot outside it, and Close waits for those (Store.inflight)
//     before it closes Pebble. So /metrics and the admin API never wait for
//     an assignment (TestNoScanUnderStoreLock).
//  2. Partition.writeBackMu: the partition's write-back map, changed by
//     its worker (Commit, the start of a restore, Close) and read by
//     ReadCustomer. A function that needs it held by its caller is named
//     ...Locked (writeback.go), as in Pebble.
//
// Pebble's own locks are below both: nothing calls back into this package
// while holding one. A Partition takes no lock for its batch state, which
// only its worker touches.
//
// # Erasure
//
// Partition.Erase removes a customer's record (with everything in it: the
// profile, counters, marks, contact history and the audit trail of
// decisions) and every timer key of the customer, pending or not (a
// deferred trigger lives in its timer), and reports a tombstone for each
// to the changelog. A restore deletes a timer's reverse key on a tombstone
// (a batch only empties it, see Key layout), so a store that catches up
// through an erase, or is restored from scratch, keeps no key with the
// customer's ID.
package state
