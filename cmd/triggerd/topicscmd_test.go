package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// topicsConfig writes a configuration naming the cluster's brokers and the
// partitioner.
func topicsConfig(t *testing.T, c *kfake.Cluster, partitioner string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	y := "kafka:\n  brokers: [" + strings.Join(c.ListenAddrs(), ", ") + "]\n  replication_factor: 1\n  partitioner: " + partitioner + "\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// "triggerd topics" on an empty cluster names every missing input and how
// to create it; --create wants a partition count when no input exists,
// then creates every topic; afterwards the check passes. It ends with the
// producers' partitioner, in librdkafka's and Java's terms.
func TestTopicsCommandCreates(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := topicsConfig(t, c, "murmur2")

	code, out, errOut := runCLI(t, "topics", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "would not start") {
		t.Fatalf("empty cluster: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{`input topic "clickstream" (topics.clickstream) does not exist`, `input topic "profiles"`,
		"triggerd topics --create", "partitioner=murmur2_random", "Java's default producer"} {
		if !strings.Contains(out, want) {
			t.Errorf("empty cluster: output does not say %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCLI(t, "topics", "--config", cfg, "--create")
	if code != 1 || !strings.Contains(out, "--partitions N") {
		t.Fatalf("--create without a count: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	code, out, errOut = runCLI(t, "topics", "--create", "--partitions", "3", "--config", cfg)
	if code != 0 {
		t.Fatalf("--create --partitions 3: exit %d\n%s%s", code, out, errOut)
	}
	for _, topic := range []string{"clickstream", "transactions", "profiles", "triggers", "triggerd.changelog"} {
		if !strings.Contains(out, topic) || !strings.Contains(out, "3 partitions, created now") {
			t.Errorf("--create: %s not reported created with 3 partitions:\n%s", topic, out)
		}
	}
	code, out, _ = runCLI(t, "topics", "--config", cfg)
	if code != 0 || !strings.Contains(out, "OK: the inputs are co-partitioned") || strings.Contains(out, "created now") {
		t.Fatalf("after --create: exit %d\n%s", code, out)
	}
}

// Inputs with different partition counts are reported with every count
// and the way out, and --create refuses to add to them; the crc32
// partitioner's contract names librdkafka's default.
func TestTopicsCommandCopartitioning(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "clickstream", "transactions"), kfake.SeedTopics(2, "profiles"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := topicsConfig(t, c, "crc32")
	code, out, _ := runCLI(t, "topics", "--config", cfg)
	for _, want := range []string{"clickstream=3", "profiles=2", "transactions=3", "recreate the odd topic", "consistent_random",
		"with crc32 (kafka.partitioner)", `missing: "run" creates it`} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d with inputs not co-partitioned, want 1", code)
	}
	if code, _, errOut := runCLI(t, "topics", "--config", cfg, "--partitions", "3"); code != 2 || !strings.Contains(errOut, "--partitions goes with --create") {
		t.Errorf("--partitions without --create: exit %d, %q", code, errOut)
	}
}
