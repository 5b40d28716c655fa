package processor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"
)

// baseOpts are the client options every client of the processor shares:
// brokers, TLS, SASL, logging.
func baseOpts(cfg *Config, log *zap.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.WithLogger(newKgoLogger(log.Named("kgo"))),
	}
	if cfg.TLS.Enabled {
		tc, err := tlsConfig(&cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch cfg.SASL.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: cfg.SASL.User, Pass: cfg.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASL.User, Pass: cfg.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASL.User, Pass: cfg.SASL.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}

// compressionCodec maps the compression setting to kgo's codec.
func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "snappy", "":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("%q is not snappy, lz4, zstd, gzip or none", name)
}

func tlsConfig(c *TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in for test clusters
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("processor: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("processor: tls.ca_file %s: no PEM certificates", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("processor: tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// partitioner sends changelog records to the partition the worker set
// (the input's partition number) and hashes every other record by key the
// way Kafka's default partitioner does, so downstream consumers find one
// customer on one partition.
type partitioner struct {
	changelog string
	manual    kgo.Partitioner
	byKey     kgo.Partitioner
}

func newPartitioner(changelog string) kgo.Partitioner {
	return &partitioner{changelog: changelog, manual: kgo.ManualPartitioner(), byKey: kgo.StickyKeyPartitioner(nil)}
}

func (p *partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == p.changelog {
		return p.manual.ForTopic(topic)
	}
	return p.byKey.ForTopic(topic)
}

// CopartitionError says the input topics do not have the same partition
// count, so partition p of each cannot be handled by one worker.
type CopartitionError struct {
	Counts map[string]int32
}

func (e *CopartitionError) Error() string {
	names := make([]string, 0, len(e.Counts))
	for t := range e.Counts {
		names = append(names, t)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, t := range names {
		parts[i] = fmt.Sprintf("%s=%d", t, e.Counts[t])
	}
	return "processor: input topics are not co-partitioned (partition counts " + strings.Join(parts, ", ") +
		"): every input topic and the changelog must have the same partition count"
}

// prepareTopics checks that the inputs exist and are co-partitioned, creates
// the missing output topics when allowed, and checks the changelog. It
// returns the partition count.
func prepareTopics(ctx context.Context, adm *kadm.Client, cfg *Config, log *zap.Logger) (int32, error) {
	inputs := cfg.Inputs()
	all := append(append([]string(nil), inputs...), cfg.Topics.Triggers, cfg.Topics.DeadLetter, cfg.Topics.Changelog, cfg.SuppressionsTopic())
	details, err := adm.ListTopics(ctx, all...)
	if err != nil {
		return 0, &sessionError{fmt.Errorf("processor: listing topics: %w", err)}
	}
	var errs []error
	counts := map[string]int32{}
	for _, t := range inputs {
		d, ok := details[t]
		if !ok || d.Err != nil {
			errs = append(errs, fmt.Errorf("processor: input topic %q does not exist", t))
			continue
		}
		counts[t] = int32(len(d.Partitions))
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	n := counts[inputs[0]]
	for _, t := range inputs[1:] {
		if counts[t] != n {
			return 0, &CopartitionError{Counts: counts}
		}
	}

	type want struct {
		topic      string
		partitions int32
		configs    map[string]*string
	}
	compact := "compact"
	trigParts := cfg.TriggerPartitions
	if trigParts == 0 {
		trigParts = n
	}
	wants := []want{
		{cfg.Topics.Triggers, trigParts, nil},
		// Suppressions are keyed by customer like the triggers and
		// partitioned alike: one customer's are in order on one.
		{cfg.SuppressionsTopic(), trigParts, nil},
		{cfg.Topics.DeadLetter, n, nil},
		{cfg.Topics.Changelog, n, map[string]*string{"cleanup.policy": &compact}},
	}
	for _, w := range wants {
		d, ok := details[w.topic]
		if ok && d.Err == nil {
			if w.topic == cfg.Topics.Changelog {
				if got := int32(len(d.Partitions)); got != n {
					counts[w.topic] = got
					errs = append(errs, &CopartitionError{Counts: counts})
				}
			}
			continue
		}
		if !cfg.CreateTopics {
			errs = append(errs, fmt.Errorf("processor: topic %q does not exist and create_topics is off", w.topic))
			continue
		}
		resp, err := adm.CreateTopic(ctx, w.partitions, cfg.ReplicationFactor, w.configs, w.topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			errs = append(errs, fmt.Errorf("processor: creating topic %q: %w", w.topic, err))
			continue
		}
		log.Info("created topic", zap.String("topic", w.topic), zap.Int32("partitions", w.partitions))
	}
	if err := checkChangelogConfig(ctx, adm, cfg.Topics.Changelog); err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// checkChangelogConfig refuses a changelog that is not compacted: with
// delete retention, old state would silently vanish from the durable copy.
func checkChangelogConfig(ctx context.Context, adm *kadm.Client, topic string) error {
	// A topic created a moment ago may not be known to every broker yet:
	// retry a bounded number of times.
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = describeChangelog(ctx, adm, topic); err == nil || !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

func describeChangelog(ctx context.Context, adm *kadm.Client, topic string) error {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return fmt.Errorf("processor: describing changelog %q: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return fmt.Errorf("processor: describing changelog %q: %w", topic, err)
	}
	if rc.Err != nil {
		return fmt.Errorf("processor: describing changelog %q: %w", topic, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil && !strings.Contains(*c.Value, "compact") {
			return fmt.Errorf("processor: changelog topic %q has cleanup.policy=%s; it must be compact", topic, *c.Value)
		}
	}
	return nil
}
