package processor

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Config is everything the processor needs to run against a cluster.
type Config struct {
	Brokers []string   `yaml:"brokers"`
	TLS     TLSConfig  `yaml:"tls"`
	SASL    SASLConfig `yaml:"sasl"`

	Group string `yaml:"group"`
	// Guarantee is the delivery guarantee: "exactly_once" (the default:
	// triggers, dead letters, changelog and input offsets commit in one
	// Kafka transaction) or "at_least_once" (no transactions: lower
	// latency; after a crash some triggers may be written again, with the
	// same trigger IDs; nothing is lost and the state stays exact).
	Guarantee Guarantee `yaml:"guarantee"`
	// InstanceID enables static membership (group.instance.id), so a
	// rolling restart does not move partitions. It also names the
	// transactional ID. Default: the host name.
	InstanceID string `yaml:"instance_id"`

	Topics    Topics         `yaml:"topics"`
	Encodings Encodings      `yaml:"encodings"`
	Registry  RegistryConfig `yaml:"registry"`

	// CreateTopics creates missing output topics (triggers, dead letters,
	// changelog) at start with TopicPartitions and ReplicationFactor.
	CreateTopics      bool  `yaml:"create_topics"`
	TriggerPartitions int32 `yaml:"trigger_partitions"` // 0 = as the inputs
	ReplicationFactor int16 `yaml:"replication_factor"`

	// Lateness is subtracted from the watermark: how late (in event time) a
	// record may arrive and still cancel a timer.
	Lateness time.Duration `yaml:"lateness"`
	// IdleAdvance lets an input that the broker says is caught up
	// advance with the wall clock (minus IdleGrace), so an idle input does
	// not stall timers. Replays of history, whose event times are far
	// behind the wall clock while they are written, turn it off (and
	// then every input must keep getting records: heartbeats).
	IdleAdvance bool `yaml:"idle_advance"`
	// IdleGrace is how long, in wall time, an idle input holds back the
	// records of the other inputs that arrived before it was found caught
	// up, so that writes to several topics a moment apart are merged in
	// event-time order; and how far behind the wall clock an idle input's
	// progress stays. It is latency: a record waits up to IdleGrace for
	// an input that has nothing to say (see docs/operations.md).
	IdleGrace time.Duration `yaml:"idle_grace"`
	// ReconnectGrace is how long after this instance takes a partition
	// (at start, in a rebalance, in a new session) or finds the brokers
	// unreachable it waits before it counts an idle input as caught up:
	// producers deliver what they buffered while the brokers were away
	// seconds after they are back, stamped with the time they were
	// written. Records and timers that wait on idle inputs wait that much
	// longer then; busy inputs do not wait.
	ReconnectGrace time.Duration `yaml:"reconnect_grace"`
	// MaxEventAge and MaxEventAhead bound an event's time relative to the
	// wall clock; outside them the record is dead-lettered as
	// "absurd_timestamp".
	MaxEventAge   time.Duration `yaml:"max_event_age"`
	MaxEventAhead time.Duration `yaml:"max_event_ahead"`

	// PollRecords caps the records of one cycle (one transaction). It is
	// large on purpose: a poll takes records fetch by fetch, and a cap
	// below one fetch of every input partition gives each partition
	// records of one input per cycle, so records of the others wait in
	// the state (held) until a later cycle. A backlog drain was four
	// times slower with 10,000 (and 1 MiB fetches); 100,000 took the
	// peak RSS past 2 GiB.
	PollRecords int `yaml:"poll_records"`
	// FetchPartitionBytes caps what one fetch returns per input partition
	// (kgo's FetchMaxPartitionBytes): small enough that one poll of
	// PollRecords spans every input partition, not a few partitions'
	// megabytes.
	FetchPartitionBytes int32 `yaml:"fetch_partition_bytes"`
	// TimersPerCycle caps the timers one partition fires per cycle, so a
	// calendar burst cannot make one transaction huge.
	TimersPerCycle int `yaml:"timers_per_cycle"`
	// Tick is how long a poll waits for records before the cycle runs
	// anyway to fire due timers.
	Tick               time.Duration `yaml:"tick"`
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	SessionTimeout     time.Duration `yaml:"session_timeout"`
	// Compression is the codec of every batch the processor produces
	// (changelog, triggers, suppressions, dead letters): "snappy"
	// (default), "lz4", "zstd", "gzip" or "none". See docs/performance.md for what
	// each cost on the benchmark.
	Compression string `yaml:"compression"`
	// StartFrom is where a group without committed offsets starts:
	// "latest" (default: a new deployment does not replay history) or
	// "earliest".
	StartFrom string `yaml:"start_from"`

	// Partitioner is how the inputs' producers map a customer ID to a
	// partition (partitioner.go): "murmur2" (Java's default, the default
	// here), "crc32" (librdkafka's default: Python's confluent-kafka,
	// kcat, .NET) or "fnv1a" (sarama's default). A record on another
	// partition than its customer's is dead-lettered as "misrouted".
	Partitioner Partitioner `yaml:"partitioner"`

	// Repartition declares raw inputs (repartition_config.go).
	Repartition Repartition `yaml:"repartition"`
}

// Guarantee is a delivery guarantee; see Config.Guarantee.
type Guarantee string

// The delivery guarantees.
const (
	ExactlyOnce Guarantee = "exactly_once"
	AtLeastOnce Guarantee = "at_least_once"
)

// Topics names the topics. Inputs must be co-partitioned.
type Topics struct {
	Clickstream  string `yaml:"clickstream"`
	Transactions string `yaml:"transactions"`
	Profiles     string `yaml:"profiles"`
	Triggers     string `yaml:"triggers"`
	DeadLetter   string `yaml:"dead_letter"`
	Changelog    string `yaml:"changelog"`
	// Suppressions receives what the contact policy suppressed or
	// deferred; empty: "<triggers>.suppressions".
	Suppressions string `yaml:"suppressions"`
}

// Encodings chooses the wire format per topic: "avro" (Confluent Schema
// Registry framing) or "json".
type Encodings struct {
	Clickstream  schemas.Format `yaml:"clickstream"`
	Transactions schemas.Format `yaml:"transactions"`
	Profiles     schemas.Format `yaml:"profiles"`
	Triggers     schemas.Format `yaml:"triggers"`
	// Suppressions: empty = as Triggers.
	Suppressions schemas.Format `yaml:"suppressions"`
}

// RegistryConfig locates the Confluent-compatible schema registry.
type RegistryConfig struct {
	URL      string `yaml:"url"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig enables SASL authentication: PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512.
type SASLConfig struct {
	Mechanism string `yaml:"mechanism"`
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
}

// DefaultConfig returns production defaults: exactly-once, JSON encodings,
// topics named triggerd.*.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Brokers:    []string{"127.0.0.1:9092"},
		Group:      "triggerd",
		Guarantee:  ExactlyOnce,
		InstanceID: host,
		Topics: Topics{
			Clickstream:  "clickstream",
			Transactions: "transactions",
			Profiles:     "profiles",
			Triggers:     "triggers",
			DeadLetter:   "triggerd.dead-letter",
			Changelog:    "triggerd.changelog",
			Suppressions: "triggerd.suppressions",
		},
		Encodings: Encodings{
			Clickstream:  schemas.FormatJSON,
			Transactions: schemas.FormatJSON,
			Profiles:     schemas.FormatJSON,
			Triggers:     schemas.FormatJSON,
		},
		CreateTopics:        true,
		ReplicationFactor:   -1, // the broker's default
		Lateness:            2 * time.Second,
		IdleAdvance:         true,
		IdleGrace:           500 * time.Millisecond,
		ReconnectGrace:      10 * time.Second,
		MaxEventAge:         365 * 24 * time.Hour,
		MaxEventAhead:       24 * time.Hour,
		PollRecords:         30000,
		FetchPartitionBytes: 128 << 10,
		TimersPerCycle:      10000,
		Tick:                250 * time.Millisecond,
		TransactionTimeout:  30 * time.Second,
		SessionTimeout:      30 * time.Second,
		StartFrom:           "latest",
		Compression:         "snappy",
		Partitioner:         Murmur2,
		Repartition:         Repartition{Inputs: []string{}},
	}
}

// Inputs lists the input topics the workers consume, in a fixed order: a
// raw input (Repartition) is replaced by its internal topic.
func (c *Config) Inputs() []string {
	return c.withRepartition(c.declaredInputs())
}

// Validate reports every problem in c at once, each a *SettingError
// naming the setting's YAML path (messages are written "path: problem").
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, settingError(fmt.Sprintf(format, args...))) }
	if len(c.Brokers) == 0 {
		add("brokers: at least one broker address is required")
	}
	for i, b := range c.Brokers {
		if err := CheckHostPort(b, false); err != nil {
			add("brokers[%d]: %v", i, err)
		}
	}
	if c.Group == "" {
		add("group: empty")
	}
	if c.Guarantee != ExactlyOnce && c.Guarantee != AtLeastOnce {
		add("guarantee: %q is not %q or %q", c.Guarantee, ExactlyOnce, AtLeastOnce)
	}
	if c.InstanceID == "" {
		add("instance_id: empty (and the host name is unknown)")
	}
	seen := map[string]string{}
	for _, t := range []struct{ name, v string }{
		{"topics.clickstream", c.Topics.Clickstream}, {"topics.transactions", c.Topics.Transactions},
		{"topics.profiles", c.Topics.Profiles}, {"topics.triggers", c.Topics.Triggers},
		{"topics.dead_letter", c.Topics.DeadLetter}, {"topics.changelog", c.Topics.Changelog},
		{"topics.suppressions", c.SuppressionsTopic()},
	} {
		if t.v == "" {
			add("%s: empty", t.name)
			continue
		}
		if other, ok := seen[t.v]; ok {
			add("%s: topic %q is also %s", t.name, t.v, other)
		}
		seen[t.v] = t.name
	}
	for _, e := range []struct {
		name string
		v    schemas.Format
	}{
		{"encodings.clickstream", c.Encodings.Clickstream}, {"encodings.transactions", c.Encodings.Transactions},
		{"encodings.profiles", c.Encodings.Profiles}, {"encodings.triggers", c.Encodings.Triggers},
		{"encodings.suppressions", c.SuppressionsFormat()},
	} {
		switch e.v {
		case schemas.FormatAvro, schemas.FormatJSON:
		default:
			add("%s: %q is not avro or json", e.name, e.v)
		}
	}
	if c.UsesAvro() && c.Registry.URL == "" {
		add("registry.url: required when an encoding is avro")
	}
	switch c.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		add("sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
	}
	if c.SASL.Mechanism != "" && (c.SASL.User == "" || c.SASL.Password == "") {
		add("sasl: user and password are required with mechanism %s", c.SASL.Mechanism)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls: cert_file and key_file go together")
	}
	if c.TriggerPartitions < 0 {
		add("trigger_partitions: %d < 0", c.TriggerPartitions)
	}
	if c.Lateness < 0 {
		add("lateness: %s < 0", c.Lateness)
	}
	if c.IdleGrace < 0 {
		add("idle_grace: %s < 0", c.IdleGrace)
	}
	if c.ReconnectGrace < 0 {
		add("reconnect_grace: %s < 0", c.ReconnectGrace)
	}
	if c.MaxEventAge <= 0 {
		add("max_event_age: must be > 0")
	}
	if c.MaxEventAhead <= 0 {
		add("max_event_ahead: must be > 0")
	}
	if c.PollRecords <= 0 {
		add("poll_records: must be > 0")
	}
	if c.FetchPartitionBytes < 1024 {
		add("fetch_partition_bytes: %d, must be at least 1024", c.FetchPartitionBytes)
	}
	if c.TimersPerCycle <= 0 {
		add("timers_per_cycle: must be > 0")
	}
	if c.Tick <= 0 {
		add("tick: must be > 0")
	}
	if c.TransactionTimeout < time.Second {
		add("transaction_timeout: %s < 1s", c.TransactionTimeout)
	}
	if c.SessionTimeout < time.Second {
		add("session_timeout: %s < 1s", c.SessionTimeout)
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		add("compression: %v", err)
	}
	if err := c.Partitioner.check(); err != nil {
		add("partitioner: %v", err)
	}
	for _, e := range c.validateRepartition() {
		add("%s", e)
	}
	switch c.StartFrom {
	case "latest", "earliest":
	default:
		add("start_from: %q is not latest or earliest", c.StartFrom)
	}
	return errors.Join(errs...)
}
