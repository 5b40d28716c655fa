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
// (the input's partition number) and hashes every other record by key with
// the inputs' partitioner (kafka.partitioner), so downstream consumers find
// one customer on one partition, the one they would compute themselves
// with the same client as the producers.
type partitioner struct {
	changelog string
	manual    kgo.Partitioner
	byKey     kgo.Partitioner
}

func newPartitioner(changelog string, byKey Partitioner) kgo.Partitioner {
	return &partitioner{changelog: changelog, manual: kgo.ManualPartitioner(), byKey: kgo.StickyKeyPartitioner(byKey.kgoHasher())}
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
// returns the partition count. Every problem found is reported in one
// error (missing inputs, partition counts, missing outputs with
// create_topics off, a changelog that is not compacted), so that an
// operator fixes them in one round, not one start at a time; nothing is
// created unless all the checks pass.
func prepareTopics(ctx context.Context, adm *kadm.Client, cfg *Config, log *zap.Logger) (int32, error) {
	inputs := cfg.Inputs()
	all := append(append([]string(nil), inputs...), cfg.Topics.Triggers, cfg.Topics.DeadLetter, cfg.Topics.Changelog, cfg.SuppressionsTopic())
	details, err := adm.ListTopics(ctx, all...)
	if err != nil {
		return 0, &sessionError{fmt.Errorf("processor: listing topics: %w", err)}
	}
	n, missing, errs := checkTopics(cfg, details)
	if _, ok := existing(details, cfg.Topics.Changelog); ok {
		if err := checkChangelogConfig(ctx, adm, cfg.Topics.Changelog); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}

	compact := "compact"
	trigParts := cfg.TriggerPartitions
	if trigParts == 0 {
		trigParts = n
	}
	for _, topic := range missing {
		partitions, configs := n, map[string]*string(nil)
		switch topic {
		case cfg.Topics.Triggers, cfg.SuppressionsTopic():
			// Suppressions are keyed by customer like the triggers
			// and partitioned alike: one customer's are in order on
			// one.
			partitions = trigParts
		case cfg.Topics.Changelog:
			configs = map[string]*string{"cleanup.policy": &compact}
		}
		resp, err := adm.CreateTopic(ctx, partitions, cfg.ReplicationFactor, configs, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			errs = append(errs, fmt.Errorf("processor: creating topic %q: %w", topic, err))
			continue
		}
		log.Info("created topic", zap.String("topic", topic), zap.Int32("partitions", partitions))
		if topic == cfg.Topics.Changelog {
			if err := checkChangelogConfig(ctx, adm, topic); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return n, errors.Join(errs...)
}

// checkTopics checks the listed topics without changing anything: every
// input exists, the inputs and an existing changelog have one partition
// count (n), and a missing output topic may be created. It returns n, the
// output topics to create, and every problem.
func checkTopics(cfg *Config, details kadm.TopicDetails) (n int32, missing []string, errs []error) {
	counts := map[string]int32{}
	inputs := cfg.Inputs()
	settings := map[string]string{
		cfg.Topics.Clickstream: "topics.clickstream", cfg.Topics.Transactions: "topics.transactions",
		cfg.Topics.Profiles: "topics.profiles",
	}
	for _, t := range inputs {
		d, ok := existing(details, t)
		if !ok {
			errs = append(errs, topicError(d, fmt.Sprintf("input topic %q (%s)", t, settings[t])))
			continue
		}
		counts[t] = int32(len(d.Partitions))
	}
	outputs := []struct{ topic, setting string }{
		{cfg.Topics.Triggers, "topics.triggers"}, {cfg.SuppressionsTopic(), "topics.suppressions"},
		{cfg.Topics.DeadLetter, "topics.dead_letter"}, {cfg.Topics.Changelog, "topics.changelog"},
	}
	for _, o := range outputs {
		d, ok := existing(details, o.topic)
		switch {
		case ok:
			if o.topic == cfg.Topics.Changelog {
				counts[o.topic] = int32(len(d.Partitions))
			}
		case d.Err != nil && !errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			errs = append(errs, topicError(d, fmt.Sprintf("topic %q (%s)", o.topic, o.setting)))
		case !cfg.CreateTopics:
			errs = append(errs, fmt.Errorf("processor: topic %q (%s) does not exist and create_topics is off", o.topic, o.setting))
		default:
			missing = append(missing, o.topic)
		}
	}
	for _, c := range counts {
		if n == 0 {
			n = c
		}
		if c != n {
			errs = append(errs, &CopartitionError{Counts: counts})
			break
		}
	}
	return n, missing, errs
}

// existing returns the details of topic and whether it exists (listed,
// without an error).
func existing(details kadm.TopicDetails, topic string) (kadm.TopicDetail, bool) {
	d, ok := details[topic]
	if !ok {
		return kadm.TopicDetail{Topic: topic, Err: kerr.UnknownTopicOrPartition}, false
	}
	return d, d.Err == nil
}

// topicError says why what (a topic and its setting) cannot be used: it
// does not exist, or the broker refused to describe it (authorization).
func topicError(d kadm.TopicDetail, what string) error {
	if errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("processor: %s does not exist", what)
	}
	return fmt.Errorf("processor: %s: %w", what, d.Err)
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
