package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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

// A raw clickstream: "triggerd topics" says when the raw topic is missing,
// lists it as raw with its own partition count (5, beside 3-partition
// co-partitioned inputs) and its internal topic as internal, never as an
// input the producers write or a missing input; --create creates the
// internal topic with the co-partitioned count, as "run" does.
func TestTopicsCommandRawInput(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "transactions", "profiles"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path := topicsConfig(t, c, "murmur2")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("  group: shop\n  repartition:\n    inputs: [clickstream]\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	const internal = "shop-clickstream-repartition"

	code, out, _ := runCLI(t, "topics", "--config", path)
	if code != 1 || !strings.Contains(out, `raw input topic "clickstream" (topics.clickstream, repartition.inputs) does not exist`) {
		t.Fatalf("raw topic missing: exit %d\n%s", code, out)
	}
	if strings.Contains(out, `input topic "`+internal+`"`) {
		t.Errorf("the internal topic is reported as a missing input:\n%s", out)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 5, 1, nil, "clickstream"); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "topics", "--config", path)
	line := func(topic string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[1] == topic {
				return l
			}
		}
		return ""
	}
	if l := line("clickstream"); !strings.HasPrefix(strings.TrimSpace(l), "raw ") || !strings.Contains(l, "5 partitions") {
		t.Errorf("raw topic line %q, want it listed as raw with 5 partitions:\n%s", l, out)
	}
	if l := line(internal); !strings.HasPrefix(strings.TrimSpace(l), "internal ") || !strings.Contains(l, `"run" creates it`) {
		t.Errorf("internal topic line %q, want it listed as internal, created by run:\n%s", l, out)
	}
	if code != 0 || !strings.Contains(out, "no producer writes") {
		t.Errorf("raw topic present: exit %d\n%s", code, out)
	}

	code, out, _ = runCLI(t, "topics", "--config", path, "--create")
	if l := line(internal); code != 0 || !strings.Contains(l, "3 partitions, created now") {
		t.Errorf("--create: exit %d, internal topic line %q, want it created with 3 partitions:\n%s", code, l, out)
	}
}
