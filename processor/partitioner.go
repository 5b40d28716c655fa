package processor

import (
	"fmt"
	"hash/crc32"
	"hash/fnv"
)

// Partitioner names how the producers of the inputs map a record key (the
// customer ID) to a partition: the kafka.partitioner setting. The state of
// a customer lives on the partition its records arrive on, so everything
// that finds a customer by ID (the misrouted check, the admin API's owner
// lookup, the erase event, the triggers keyed by customer) must use the
// producers' partitioner; the clients disagree on it:
//
//   - murmur2: Java's default (and Kafka Streams', franz-go's, kafkajs's
//     DefaultPartitioner since 2.0, librdkafka's murmur2 and
//     murmur2_random): murmur2 of the key, made positive, modulo the
//     partition count.
//   - crc32: librdkafka's default, consistent_random (and consistent):
//     the IEEE CRC-32 of the key (zlib's), unsigned, modulo the partition
//     count. This is what Python's confluent-kafka, kcat, .NET's
//     Confluent.Kafka and Go's confluent-kafka-go do unless configured.
//     The _random suffix only matters for keyless records (random
//     partition), which the processor refuses anyway (key_mismatch); an
//     empty key is partition 0 (consistent).
//   - fnv1a: sarama's default (NewHashPartitioner): the 32-bit FNV-1a of
//     the key as a signed int32, modulo the partition count, negated when
//     negative.
//
// Clients that ignore the key by default (segmentio/kafka-go's RoundRobin
// balancer) match no partitioner: configure them to hash the key.
type Partitioner string

// The partitioners.
const (
	Murmur2 Partitioner = "murmur2"
	CRC32   Partitioner = "crc32"
	FNV1a   Partitioner = "fnv1a"
)

// partitioners are the accepted values of kafka.partitioner, in the order
// the error lists them.
var partitioners = []Partitioner{Murmur2, CRC32, FNV1a}

// check says what is wrong with p, or nil.
func (p Partitioner) check() error {
	for _, q := range partitioners {
		if p == q {
			return nil
		}
	}
	hint := ""
	switch p {
	case "consistent_random", "consistent":
		hint = " (librdkafka's " + string(p) + " is crc32)"
	case "murmur2_random", "default", "":
		hint = " (use murmur2)"
	}
	return fmt.Errorf("%q is not murmur2 (Java's default), crc32 (librdkafka's default: Python, kcat, .NET) or fnv1a (sarama's default)%s", string(p), hint)
}

// Partition is the partition of key among n (n > 0) under p. An unknown p
// (Validate refuses it) is murmur2.
func (p Partitioner) Partition(key []byte, n int32) int32 {
	switch p {
	case CRC32:
		return partitionCRC32(key, n)
	case FNV1a:
		return partitionFNV1a(key, n)
	}
	return PartitionOf(key, n)
}

// partitionCRC32 is librdkafka's rd_kafka_msg_partitioner_consistent:
// rd_crc32(key) % partition_cnt, the CRC-32 being zlib's (the IEEE
// polynomial, reflected, inverted in and out) and the modulo unsigned.
func partitionCRC32(key []byte, n int32) int32 {
	return int32(crc32.ChecksumIEEE(key) % uint32(n))
}

// partitionFNV1a is sarama's hashPartitioner as NewHashPartitioner makes
// it (referenceAbs false): int32(fnv1a(key)) % n, negated when negative.
func partitionFNV1a(key []byte, n int32) int32 {
	h := fnv.New32a()
	_, _ = h.Write(key) // a hash never fails to write
	p := int32(h.Sum32()) % n
	if p < 0 {
		p = -p
	}
	return p
}

// kgoHasher adapts p to kgo's StickyKeyPartitioner: keyed records go where
// p puts their key, keyless ones (dead letters of keyless records) stick
// to a partition per batch as kgo's default does.
func (p Partitioner) kgoHasher() func(key []byte, n int) int {
	return func(key []byte, n int) int { return int(p.Partition(key, int32(n))) }
}
