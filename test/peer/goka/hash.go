package main

import "hash"

// kafkaHash is Kafka's default partitioner (murmur2 of the key, its sign
// bit cleared) as a hash.Hash32 for goka's hasher options: the inputs are
// partitioned by it, and goka's own (FNV-1a) would put a customer's checks
// and its delay records in other partitions than its table entry.
type kafkaHash struct{ b []byte }

func newKafkaHash() hash.Hash32 { return &kafkaHash{} }

func (h *kafkaHash) Write(p []byte) (int, error) { h.b = append(h.b, p...); return len(p), nil }
func (h *kafkaHash) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
func (h *kafkaHash) Reset()         { h.b = h.b[:0] }
func (h *kafkaHash) Size() int      { return 4 }
func (h *kafkaHash) BlockSize() int { return 4 }

// Sum32 is non-negative, so sarama's and goka's "hash % partitions" is
// Kafka's partition.
func (h *kafkaHash) Sum32() uint32 { return murmur2(h.b) & 0x7fffffff }

// murmur2 is Kafka's (org.apache.kafka.common.utils.Utils.murmur2).
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(data))
	for len(data) >= 4 {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
