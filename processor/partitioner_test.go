package processor

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Golden values, each from an implementation other than this package's:
//
//   - murmur2: the hashes are Kafka's own known answers
//     (org.apache.kafka.common.utils.UtilsTest.testMurmur2); the partition
//     is toPositive(hash) % n, as the Java DefaultPartitioner computes it.
//   - crc32: Python's zlib.crc32 (zlib's CRC-32, which librdkafka's
//     rd_crc32 is), "123456789" being the CRC-32 check value 0xcbf43926;
//     the partition is crc % n, unsigned, as
//     rd_kafka_msg_partitioner_consistent computes it.
//   - fnv1a: a ten-line FNV-1a in Python (offset basis 0x811c9dc5, prime
//     0x01000193; "foobar" is 0xbf9cf968 in the FNV test vectors), then
//     sarama's NewHashPartitioner: int32(h) % n, negated when negative.
var goldenHashes = []struct {
	key    string
	murmur int32  // Java's Utils.murmur2, signed
	crc    uint32 // zlib.crc32
	fnv    uint32 // FNV-1a 32
}{
	{"21", -973932308, 4252452532, 2364708844},
	{"foobar", -790332482, 2666930069, 3214735720},
	{"a-little-bit-long-string", -985981536, 0, 0},
	{"a-little-bit-longer-string", -1486304829, 0, 0},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, 3769350433, 389149966},
	{"abc", 479470107, 891568578, 440920331},
	{"123456789", 0, 0xcbf43926, 0},
}

func TestPartitionerHashesMatchReferenceImplementations(t *testing.T) {
	for _, g := range goldenHashes {
		if g.murmur != 0 {
			if got := int32(murmur2([]byte(g.key))); got != g.murmur {
				t.Errorf("murmur2(%q) = %d, Kafka's UtilsTest says %d", g.key, got, g.murmur)
			}
		}
		if g.crc != 0 {
			// n = 2^31-1 keeps the hash's residue visible.
			if got, want := partitionCRC32([]byte(g.key), 1<<31-1), int32(g.crc%(1<<31-1)); got != want {
				t.Errorf("crc32 partition of %q among 2^31-1 = %d, zlib says %d", g.key, got, want)
			}
		}
	}
}

// Partitions as each client computes them, for small partition counts.
func TestPartitionerGoldenPartitions(t *testing.T) {
	cases := []struct {
		p    Partitioner
		key  string
		n    int32
		want int32
	}{
		// toPositive(murmur2("foobar")) = 1357151166
		{Murmur2, "foobar", 50, 16}, {Murmur2, "foobar", 7, 1357151166 % 7}, {Murmur2, "21", 12, (-973932308 & 0x7fffffff) % 12},
		{Murmur2, "abc", 12, 479470107 % 12},
		// zlib.crc32(k) % n
		{CRC32, "", 7, 0}, {CRC32, "21", 7, 6}, {CRC32, "21", 12, 4}, {CRC32, "foobar", 7, 6}, {CRC32, "foobar", 12, 5},
		{CRC32, "abc", 7, 5}, {CRC32, "abc", 12, 6}, {CRC32, "customer-1", 7, 3}, {CRC32, "customer-1", 12, 9},
		{CRC32, "cust-00042", 12, 0}, {CRC32, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 12, 1},
		// sarama: |int32(fnv1a(k)) % n|
		{FNV1a, "", 7, 2}, {FNV1a, "", 12, 3}, {FNV1a, "21", 7, 3}, {FNV1a, "21", 12, 0}, {FNV1a, "foobar", 7, 4},
		{FNV1a, "abc", 12, 11}, {FNV1a, "customer-1", 7, 1}, {FNV1a, "customer-1", 12, 7}, {FNV1a, "cust-00042", 7, 3},
		{FNV1a, "cust-00042", 12, 11},
	}
	for _, c := range cases {
		if got := c.p.Partition([]byte(c.key), c.n); got != c.want {
			t.Errorf("%s: partition of %q among %d = %d, want %d", c.p, c.key, c.n, got, c.want)
		}
	}
}

// murmur2 agrees with franz-go's default partitioner (the Java client's).
// (kgo's SaramaHasher is no reference for fnv1a: on 64-bit platforms its
// modulo is unsigned, where sarama's NewHashPartitioner takes int32(h).)
func TestPartitionerMatchesKgoDefault(t *testing.T) {
	kafka := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 7, 12, 64} {
		for i := range 3000 {
			key := []byte(strings.Repeat("k", i%9) + string(rune('a'+i%26)) + strings.Repeat("\xff", i%5))
			if got, want := Murmur2.Partition(key, int32(n)), int32(kafka.Partition(&kgo.Record{Key: key}, n)); got != want {
				t.Fatalf("murmur2 %q/%d = %d, kgo %d", key, n, got, want)
			}
		}
	}
}

// The setting is checked with a message naming it and every value.
func TestPartitionerSetting(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Partitioner != Murmur2 {
		t.Fatalf("default partitioner %q, want murmur2 (Java's default)", cfg.Partitioner)
	}
	for _, ok := range []Partitioner{Murmur2, CRC32, FNV1a} {
		cfg.Partitioner = ok
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []Partitioner{"", "consistent_random", "Murmur2"} {
		cfg.Partitioner = bad
		err := cfg.Validate()
		var se *SettingError
		if err == nil || !errors.As(err, &se) {
			t.Fatalf("partitioner %q accepted (err %v)", bad, err)
		}
		for _, want := range []string{"partitioner: ", "murmur2", "crc32", "fnv1a", "librdkafka"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("partitioner %q: error %q does not say %q", bad, err, want)
			}
		}
	}
	cfg.Partitioner = "consistent_random"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "consistent_random is crc32") {
		t.Errorf("librdkafka's name: %v, want a hint to crc32", err)
	}
}
