// Command triggerd is the streaming trigger processor.
//
//	triggerd run --config FILE   process against a Kafka cluster (--shadow-rules: a candidate beside)
//	triggerd demo [--duration D] an in-process Kafka, traffic and the processor
//	triggerd rules check|test|vars|example   tooling for rule authors
//	triggerd state get|explain|erase ID      a customer, through the admin API
//	triggerd topics --config FILE [--create] check (or create) the topics
//	triggerd backtest --rules FILE --from T1 a candidate rules file on history
//	triggerd rescale --config FILE --to M    change the partition count, with the state
//	triggerd version
//	triggerd help [COMMAND]                  a command's usage (as COMMAND --help)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const usage = `triggerd: a Kafka-native streaming trigger processor

Usage:
  triggerd run --config FILE      process events from a Kafka cluster
                                  (--shadow-rules FILE: a candidate on the same traffic, to shadow topics)
  triggerd demo [--duration 30s]  run everything in-process: Kafka (kfake), traffic, processor
  triggerd rules check FILE       validate a rules file: every error with its line and column
  triggerd rules test FILE SCRIPT...  run rule scripts (events, a virtual clock, expected triggers)
  triggerd rules vars             the variables rule expressions can use
  triggerd rules example          print the example rules built into the binary
  triggerd state get|explain|erase ID   a customer through a running instance's admin API
  triggerd topics [--config FILE] [--create]   check (or create) the co-partitioned topics
  triggerd backtest --rules FILE --from T1 [--to T2]   replay history through candidate rules, compare
  triggerd rescale --config FILE --to M   change the partition count of a stopped deployment, with its state
  triggerd version
  triggerd help [COMMAND]         a command's usage (as COMMAND --help)

Flags go before or after a command's arguments; "--" ends them.

Configuration: a YAML file (see deploy/config.example.yaml); every setting can
be overridden with TRIGGERD_<PATH>, e.g. TRIGGERD_KAFKA_BROKERS=host1:9092,host2:9092.
A TRIGGERD_ variable that names no setting stops the start.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const versionUsage = `Usage:
  triggerd version

Prints the version of this binary.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli runs the command line args (without the program's name) and returns
// the exit code: 0, 1 for a failure, 2 for a command line that cannot be
// run. "--help" (or -h) on any command prints its usage and returns 0;
// "triggerd help CMD" is "triggerd CMD --help".
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runCmd(ctx, args[1:], stdout)
	case "demo":
		err = demoCmd(ctx, args[1:], stdout)
	case "rules":
		return rulesCmd(args[1:], stdout, stderr)
	case "state":
		err = stateCmd(ctx, args[1:], stdout)
	case "topics":
		err = topicsCmd(ctx, args[1:], stdout)
	case "backtest":
		err = backtestCmd(ctx, args[1:], stdout, stderr)
	case "rescale":
		err = rescaleCmd(ctx, args[1:], stdout, stderr)
	case "version":
		err = versionCmd(args[1:], stdout)
	case "help":
		if len(args) > 1 && args[1] != "help" && !strings.HasPrefix(args[1], "-") {
			return cli(ctx, append(args[1:], "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageErrorf(nil, usage, "unknown command %q", args[0])
	}
	return exitCode(err, stderr)
}

func versionCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, versionUsage, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, versionUsage, "version: no arguments expected, got %q", fs.Args())
	}
	fmt.Fprintln(stdout, "triggerd", version)
	return nil
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
