package processor

import (
	"fmt"
	"strings"
	"time"
)

// Repartition declares raw inputs: topics whose producers do not key by
// customer ID (a clickstream keyed by session or device, or not keyed), with
// any partition count and any partitioner. The repartition stage
// (repartition.go) reads each raw record's customer ID from its value (the
// event's customer_id field, in the input's encoding: JSON or Avro), and
// writes the record, keyed by customer ID under kafka.partitioner, to an
// internal co-partitioned topic (RepartitionTopic), which the workers consume
// in place of the raw one.
type Repartition struct {
	// Inputs names the raw inputs by their key under topics:
	// clickstream, transactions, profiles.
	Inputs []string `yaml:"inputs"`
	// Partitions is the internal topics' partition count when every input
	// is raw; 0: as the co-partitioned inputs.
	Partitions int32 `yaml:"partitions"`
	// PurgeInterval is how often the stage deletes the internal topics'
	// records the workers have committed past (repartition_purge.go);
	// 0: 30s, as Kafka Streams' repartition.purge.interval.ms.
	PurgeInterval time.Duration `yaml:"purge_interval"`
}

// inputKeys are the inputs' setting names, in the order of Inputs.
var inputKeys = []string{"clickstream", "transactions", "profiles"}

// declaredInputs are the input topics as configured (raw or not), in the
// order of Inputs.
func (c *Config) declaredInputs() []string {
	return []string{c.Topics.Clickstream, c.Topics.Transactions, c.Topics.Profiles}
}

// isRaw reports whether the input with setting name key is declared raw.
func (c *Config) isRaw(key string) bool {
	for _, k := range c.Repartition.Inputs {
		if k == key {
			return true
		}
	}
	return false
}

// RepartitionTopic is the internal topic the stage writes raw topic's
// records to: "<group>-<raw topic>-repartition", as Kafka Streams names
// its repartition topics after the application.
func (c *Config) RepartitionTopic(raw string) string {
	return c.Group + "-" + raw + "-repartition"
}

// RepartitionGroup is the consumer group of the repartition stage, apart
// from the workers' group: the raw topics have their own partition counts,
// which the co-partitioned balancer cannot assign by partition number.
func (c *Config) RepartitionGroup() string { return c.Group + "-repartition" }

// RawInputs lists the raw input topics, in the order of Inputs.
func (c *Config) RawInputs() []string {
	var raw []string
	for i, t := range c.declaredInputs() {
		if c.isRaw(inputKeys[i]) {
			raw = append(raw, t)
		}
	}
	return raw
}

// withRepartition replaces each raw input of inputs (in the order of
// declaredInputs) by its internal topic.
func (c *Config) withRepartition(inputs []string) []string {
	for i := range inputs {
		if c.isRaw(inputKeys[i]) {
			inputs[i] = c.RepartitionTopic(inputs[i])
		}
	}
	return inputs
}

// validateRepartition reports the problems of the repartition settings, as
// "path: problem" messages.
func (c *Config) validateRepartition() []string {
	var errs []string
	seen := map[string]bool{}
	for i, k := range c.Repartition.Inputs {
		switch {
		case !c.isKnownInput(k):
			errs = append(errs, fmt.Sprintf("repartition.inputs[%d]: %q is not %s", i, k, strings.Join(inputKeys, ", ")))
		case seen[k]:
			errs = append(errs, fmt.Sprintf("repartition.inputs[%d]: %s is listed twice", i, k))
		}
		seen[k] = true
	}
	if c.Repartition.PurgeInterval < 0 {
		errs = append(errs, fmt.Sprintf("repartition.purge_interval: %s < 0", c.Repartition.PurgeInterval))
	}
	if c.Repartition.Partitions < 0 {
		errs = append(errs, fmt.Sprintf("repartition.partitions: %d < 0", c.Repartition.Partitions))
	}
	if len(seen) == len(inputKeys) && c.Repartition.Partitions == 0 {
		errs = append(errs, "repartition.partitions: required (> 0) when every input is raw: "+
			"no co-partitioned input gives the partition count of the internal topics")
	}
	if len(seen) > 0 && c.Group == "" {
		return errs // the internal topics are named after the group, reported empty already
	}
	others := map[string]bool{c.Topics.Clickstream: true, c.Topics.Transactions: true, c.Topics.Profiles: true,
		c.Topics.Triggers: true, c.Topics.DeadLetter: true, c.Topics.Changelog: true, c.SuppressionsTopic(): true}
	for i, t := range c.declaredInputs() {
		if c.isRaw(inputKeys[i]) && t != "" && others[c.RepartitionTopic(t)] {
			errs = append(errs, fmt.Sprintf("topics.%s: the internal topic of raw input %q, %q, is also another topic of the configuration",
				inputKeys[i], t, c.RepartitionTopic(t)))
		}
	}
	return errs
}

func (c *Config) isKnownInput(k string) bool {
	for _, key := range inputKeys {
		if k == key {
			return true
		}
	}
	return false
}
