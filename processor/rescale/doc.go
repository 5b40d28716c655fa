// Package rescale moves a stopped triggerd deployment from N to M
// partitions with its state: every customer record (with everything in it:
// counters, runs, once-marks, contact history, the audit trail), every
// timer (deferred triggers among them) goes to the customer's partition
// under M (kafka.partitioner), in a new changelog topic.
//
// # What moves where
//
// The changelog holds four kinds of records (state.ParseChangelogKey):
// customer and timer records belong to a customer and are copied, last
// value per key, to the customer's new partition; held input records belong
// to an input partition and an offset, so they are written back to the new
// input topics, on the customer's partition, where the new layout reads
// them first (held.go);
// the offsets record belongs to a partition and is written anew in each new
// partition: the new input topics from offset 0, each input's event-time
// progress and the fired watermark as the minimum over the old partitions
// (no timer fires earlier than it would have, none is lost).
//
// # Topics
//
// The new changelog is "<changelog>-r<K+1>" (K is the old one's, 0 without
// a suffix): a rescale never writes to the topic a processor reads, the old
// changelog stays as it was, and the names never repeat. Co-partitioned
// inputs move to "<topic>-r<K+1>" with M partitions (created here, the old
// topic's settings copied); their producers switch to them. The internal
// topics of raw inputs (the repartition stage) keep their names and are
// recreated with M partitions once the workers' group has consumed them to
// the end; the raw offsets stay with the stage's group. The processor finds
// the new layout through its configuration (Result.Settings).
//
// # Exact and resumable
//
// The rescale reads every old changelog partition to its end twice
// (read_committed). The first pass learns the last offset of every key, the
// held records and the offsets records; the second writes the records that
// are the last of their key. After each flushed chunk, the position reached
// in each old partition is committed in the consumer group
// "<group>-rescale-<new changelog>" (a progress marker); a rerun writes
// only from there. A crash between a flush and its commit writes a suffix again, which cannot
// change the result: a key's records all come from one old partition and
// keep their order, and its last record is written last. When the copy is
// complete, the offsets records are written, the topics recreated or
// created, the workers' group positioned at 0 on the new topics, and the
// end of the new changelog committed in the progress group: the marker that
// the rescale is done (a rerun then only reports).
package rescale
