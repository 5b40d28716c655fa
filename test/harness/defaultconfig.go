package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
)

// WriteDefaultConfig writes a config file for "triggerd run" that sets only
// what a deployment must name (brokers, group, instance ID, topics) and
// leaves every other setting, event time included (idle_advance, idle_grace,
// lateness, tick), at its default: the configuration a new user runs. The
// exceptions, both for a test's sake and neither about event time: the
// group starts from the earliest offsets (a record written before the group
// first polls is not skipped), and topics get one replica. The rules file
// holds only cart abandonment, with the stages' delays given: the
// behaviour the tests' models know.
//
// Of cfg it takes the brokers, group, instance ID and topics only; extra
// adds settings (see DefaultConfigExtra).
func WriteDefaultConfig(t testing.TB, cfg processor.Config, dir, ops string, stage1, stage2 time.Duration, extra ...DefaultConfigExtra) string {
	t.Helper()
	var kafka, sections strings.Builder
	for _, x := range extra {
		for _, l := range x.Kafka {
			kafka.WriteString("  " + l + "\n")
		}
		sections.WriteString(x.Sections)
	}
	return writeRunConfig(t, cfg, dir, ops, stage1, stage2, kafka.String(), sections.String())
}

// writeRunConfig writes dir/config.yaml for "triggerd run": cfg's brokers,
// group, instance ID and topics, one replica, the earliest offsets, then
// the kafka: lines given, state under dir, the ops endpoint on ops, a
// cart-only rules file with the stages' delays, and the top-level sections
// given.
func writeRunConfig(t testing.TB, cfg processor.Config, dir, ops string, stage1, stage2 time.Duration, kafka, sections string) string {
	t.Helper()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, rules.CartOnlyYAML(stage1, stage2), 0o600); err != nil {
		t.Fatal(err)
	}
	tp := cfg.Topics
	y := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  instance_id: %s
  topics:
    clickstream: %s
    transactions: %s
    profiles: %s
    triggers: %s
    dead_letter: %s
    changelog: %s
    suppressions: %s
  replication_factor: 1
  start_from: earliest
%sstate:
  dir: %s
ops:
  addr: %s
rules:
  file: %s
%s`, strings.Join(cfg.Brokers, ", "), cfg.Group, cfg.InstanceID, tp.Clickstream, tp.Transactions, tp.Profiles, tp.Triggers,
		tp.DeadLetter, tp.Changelog, cfg.SuppressionsTopic(), kafka, filepath.Join(dir, "state"), ops, rulesFile, sections)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// DefaultConfigExtra is what a test adds to WriteDefaultConfig's file.
type DefaultConfigExtra struct {
	// Kafka are lines under kafka:, e.g. "partitioner: crc32".
	Kafka []string
	// Sections is top-level YAML appended to the file, e.g. an admin:
	// section; each line ends with a newline.
	Sections string
}
