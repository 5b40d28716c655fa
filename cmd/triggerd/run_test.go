package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/schemas"
)

// runConfig is a valid configuration on a kfake cluster with the input
// topics, state in a temporary directory and no ops endpoint.
func runConfig(t *testing.T) Config {
	t.Helper()
	cfg := defaultConfig()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, cfg.Kafka.Inputs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cfg.Kafka.Brokers = cluster.ListenAddrs()
	cfg.Kafka.InstanceID = "test"
	cfg.State.Dir = t.TempDir()
	cfg.Ops.Addr = ""
	return cfg
}

// With only the suppressions in Avro, the start makes a schema registry
// client and registers the suppression schema (it used to start without a
// client, and fail making the suppression encoder).
func TestRunSuppressionsAvroOnly(t *testing.T) {
	cfg := runConfig(t)
	registry := srfake.New()
	defer registry.Close()
	cfg.Kafka.Registry.URL = registry.URL()
	cfg.Kafka.Encodings.Suppressions = schemas.FormatAvro
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, zaptest.NewLogger(t)) }()
	client, err := sr.NewClient(sr.URLs(registry.URL()))
	if err != nil {
		t.Fatal(err)
	}
	subject := schemas.ValueSubject(cfg.Kafka.SuppressionsTopic())
	for {
		subjects, _ := client.Subjects(ctx)
		if contains(subjects, subject) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run stopped before registering %s: %v", subject, err)
		case <-ctx.Done():
			t.Fatalf("%s not registered: %v", subject, subjects)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// An ops address already taken stops the start, naming the setting: the
// process used to run on without /metrics, /healthz and /readyz.
func TestRunOpsAddrTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := runConfig(t)
	cfg.Ops.Addr = ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = run(ctx, cfg, zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), "ops endpoint (ops.addr)") || ctx.Err() != nil {
		t.Fatalf("run with a taken ops address = %v (context: %v), want it refused at start", err, ctx.Err())
	}
}
