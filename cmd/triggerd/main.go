// Command triggerd is the streaming trigger processor.
//
//	triggerd run --config FILE   process against a Kafka cluster
//	triggerd demo [--duration D] an in-process Kafka, traffic and the processor
//	triggerd rules check|test|vars|example   tooling for rule authors
//	triggerd state get|explain|erase ID      a customer, through the admin API
//	triggerd version
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const usage = `triggerd: a Kafka-native streaming trigger processor

Usage:
  triggerd run --config FILE      process events from a Kafka cluster
  triggerd demo [--duration 30s]  run everything in-process: Kafka (kfake), traffic, processor
  triggerd rules check FILE       validate a rules file: every error with its line and column
  triggerd rules test FILE SCRIPT...  run rule scripts (events, a virtual clock, expected triggers)
  triggerd rules vars             the variables rule expressions can use
  triggerd state get|explain|erase ID   a customer through a running instance's admin API
  triggerd version

Configuration: a YAML file (see deploy/config.example.yaml); every setting can
be overridden with TRIGGERD_<PATH>, e.g. TRIGGERD_KAFKA_BROKERS=host1:9092,host2:9092.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(ctx, os.Args[2:])
	case "demo":
		err = demoCmd(ctx, os.Args[2:])
	case "rules":
		os.Exit(rulesCmd(os.Args[2:], os.Stdout, os.Stderr))
	case "state":
		err = stateCmd(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "version":
		fmt.Println("triggerd", version)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "triggerd: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "triggerd:", err)
		os.Exit(1)
	}
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return zc.Build()
}
