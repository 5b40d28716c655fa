package processor

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// PartitionOf must pick the partition a producer with Kafka's default
// partitioner picks for the same key, or the admin API would look for a
// customer in the wrong place. franz-go's default partitioner (murmur2 for
// keyed records, as the Java client's) is the reference.
func TestPartitionOfMatchesKafkaDefault(t *testing.T) {
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 8, 12, 100} {
		for i := range 2000 {
			key := fmt.Appendf(nil, "c-%06d", i)
			if i%7 == 0 {
				key = key[:i%len(key)] // short keys: every tail length
			}
			if i%11 == 0 {
				key = append(key, "\x00\xff\x80é"...)
			}
			want := int32(part.Partition(&kgo.Record{Key: key}, n))
			if got := PartitionOf(key, int32(n)); got != want {
				t.Fatalf("PartitionOf(%q, %d) = %d, Kafka's default partitioner says %d", key, n, got, want)
			}
		}
	}
}

// The admin address a member advertises comes back out of its join
// metadata, where DescribeGroups shows it to the other instances.
func TestBalancerAdvertisesAdmin(t *testing.T) {
	b := copartitionedBalancer{userData: encodeUserData("http://10.0.0.7:9465")}
	raw := b.JoinGroupMetadata([]string{"clicks"}, map[string][]int32{"clicks": {1, 0}}, 4)
	var meta kmsg.ConsumerMemberMetadata
	if err := meta.ReadFrom(raw); err != nil {
		t.Fatal(err)
	}
	if got := decodeUserData(meta.UserData).Admin; got != "http://10.0.0.7:9465" {
		t.Fatalf("advertised admin %q", got)
	}
	if len(meta.OwnedPartitions) != 1 || len(meta.OwnedPartitions[0].Partitions) != 2 {
		t.Fatalf("owned partitions lost: %+v", meta.OwnedPartitions)
	}
	// Without an admin API nothing is advertised, and foreign user data
	// advertises nothing.
	if raw := (copartitionedBalancer{}).JoinGroupMetadata([]string{"clicks"}, nil, 1); len(raw) == 0 {
		t.Fatal("no metadata")
	} else if err := meta.ReadFrom(raw); err != nil || len(meta.UserData) != 0 {
		t.Fatalf("user data %q, err %v", meta.UserData, err)
	}
	if got := decodeUserData([]byte("\x00\x01binary")).Admin; got != "" {
		t.Fatalf("foreign user data decoded as %q", got)
	}
}
