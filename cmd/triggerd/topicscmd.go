package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
)

const topicsUsage = `Usage:
  triggerd topics [--config FILE] [--create [--partitions N]]

Checks the configured topics as "run" does at start, and says what is wrong
with each: every input topic (clickstream, transactions, profiles) must
exist, and the inputs and the changelog must have the same partition count
(partition P of each holds the same customers: they are co-partitioned);
the changelog must be compacted. With --create, the missing input topics
are created with the existing inputs' partition count (or --partitions N
when none exists), then the missing output topics, as "run" would with
create_topics on. Existing topics are never changed.

A raw input (kafka.repartition.inputs) is listed as raw: it must exist and
be readable, with any partition count; its internal topic is listed as
internal (the repartition stage writes it, no producer does), and --create
creates it as "run" would.

It ends with the partitioner the producers of the inputs must use
(kafka.partitioner). Exit status 1 when "run" would refuse the topics.
`

func topicsCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("topics", flag.ContinueOnError)
	path := fs.String("config", "", "the configuration `FILE` (YAML; default: $TRIGGERD_CONFIG, else the defaults)")
	create := fs.Bool("create", false, "create the missing input and output topics")
	partitions := fs.Int("partitions", 0, "with --create, the partition `count` of new input topics when none exists")
	if err := parseFlags(fs, topicsUsage, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, topicsUsage, "topics: no arguments expected, got %q", fs.Args())
	}
	if *partitions < 0 || *partitions > 1<<20 {
		return usageErrorf(fs, topicsUsage, "topics: --partitions %d is not a partition count", *partitions)
	}
	if *partitions > 0 && !*create {
		return usageErrorf(fs, topicsUsage, "topics: --partitions goes with --create")
	}
	if *path == "" {
		*path = os.Getenv("TRIGGERD_CONFIG")
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	rep, err := processor.CheckTopics(ctx, cfg.Kafka, *create, int32(*partitions), zap.NewNop())
	if err != nil {
		return fmt.Errorf("topics: brokers %s: %w", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	printTopics(stdout, cfg.Kafka, rep)
	if len(rep.Problems) > 0 {
		return fmt.Errorf("topics: %d problem(s): \"triggerd run\" would not start", len(rep.Problems))
	}
	return nil
}

func printTopics(w io.Writer, cfg processor.Config, rep processor.TopicsReport) {
	created := map[string]bool{}
	for _, t := range rep.Created {
		created[t] = true
	}
	toCreate := map[string]bool{}
	for _, t := range rep.ToCreate {
		toCreate[t] = true
	}
	fmt.Fprintf(w, "Topics on %s:\n", strings.Join(cfg.Brokers, ","))
	for _, t := range rep.Topics {
		kind := t.Kind // input, raw, internal, output
		state := fmt.Sprintf("%d partitions", t.Partitions)
		switch {
		case !t.Exists && toCreate[t.Topic]:
			state = `missing: "run" creates it (create_topics on)`
		case !t.Exists:
			state = "missing"
		case created[t.Topic]:
			state += ", created now"
		}
		fmt.Fprintf(w, "  %-8s %-32s %-22s %s\n", kind, t.Topic, "("+t.Setting+")", state)
	}
	if len(rep.Problems) == 0 {
		fmt.Fprintln(w, "\nOK: the inputs are co-partitioned and \"triggerd run\" accepts these topics.")
	} else {
		fmt.Fprintln(w, "\nProblems (\"triggerd run\" refuses to start until each is fixed):")
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  - %s\n", strings.TrimPrefix(p.Error(), "processor: "))
			if fix := topicFix(p); fix != "" {
				fmt.Fprintf(w, "    %s\n", fix)
			}
		}
	}
	fmt.Fprintf(w, "\n%s\n", producerContract(cfg.Partitioner))
}

// topicFix explains how to fix a problem a newcomer is likely to meet.
func topicFix(err error) string {
	var cpe *processor.CopartitionError
	msg := err.Error()
	switch {
	case errors.As(err, &cpe):
		return "Partition P of every input holds the same customers, so the counts must be equal. A topic's partitions cannot be\n" +
			"    reduced, and adding some moves customers to other partitions: recreate the odd topic with the others' count\n" +
			"    (and its producers' records), or, if it holds nothing yet, delete it and run \"triggerd topics --create\"."
	case strings.Contains(msg, "input topic") && strings.Contains(msg, "does not exist"):
		return "Create it with the other inputs' partition count: \"triggerd topics --create\" (--partitions N if no input exists)."
	case strings.Contains(msg, "create_topics is off"):
		return "Create it, or set kafka.create_topics: true, or run \"triggerd topics --create\"."
	case strings.Contains(msg, "cleanup.policy"):
		return "Set it: kafka-configs --alter --entity-type topics --entity-name TOPIC --add-config cleanup.policy=compact"
	}
	return ""
}

// producerContract is what the producers of the inputs must do.
func producerContract(p processor.Partitioner) string {
	var how string
	switch p {
	case processor.CRC32:
		how = "librdkafka's default (consistent_random: Python confluent-kafka, kcat, .NET Confluent.Kafka, confluent-kafka-go);\n" +
			"a Java producer needs a custom partitioner computing CRC32(key) % partitions."
	case processor.FNV1a:
		how = "sarama's default (NewHashPartitioner); librdkafka and Java producers need a custom partitioner."
	default:
		how = "Java's default producer (and Kafka Streams, franz-go, kafkajs 2.x); librdkafka clients (Python\n" +
			"confluent-kafka, kcat, .NET) must set partitioner=murmur2_random, or set kafka.partitioner: crc32 instead."
	}
	return fmt.Sprintf("Producers: key every input record by the customer ID and partition it with %s (kafka.partitioner):\n%s\n"+
		"A record on another partition than its customer's is dead-lettered as misrouted. A raw input (repartition.inputs)\n"+
		"takes any key, partitioner and partition count: the repartition stage writes its internal topic, which no producer writes.", p, how)
}
