package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor/rescale"
)

const rescaleUsage = `Usage:
  triggerd rescale --config FILE --to M

Moves a stopped deployment from its partition count N to M, up or down,
with its state: every customer record (counters, sequences, once-marks,
contact history, audit trail) and every timer (deferred triggers too) goes
to the customer's partition under M, in a new changelog topic
"<changelog>-r<K>". The old changelog is left as it was.

Runbook (docs/operations.md, "Changing the partition count"):
  1. Stop the deployment (every instance).
  2. triggerd rescale --config FILE --to M
     It refuses, saying what to do, while the group has members or while
     an input is not processed to its end. Records held for another input
     are written to the new input partitions, read there first.
     Co-partitioned inputs move to new topics "<topic>-r<K>" with M
     partitions, created here: switch their producers to them. The
     internal topics of raw inputs are recreated with M partitions.
  3. Change the settings it prints, and start the deployment.

Progress goes to stderr; the last line is the summary. An interrupted
rescale (even SIGKILL) is finished by running the same command again.
`

func rescaleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rescale", flag.ContinueOnError)
	path := fs.String("config", "", "the configuration `FILE` (YAML; default: $TRIGGERD_CONFIG)")
	to := fs.Int("to", 0, "the new partition `count` M")
	if err := parseFlags(fs, rescaleUsage, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, rescaleUsage, "rescale: no arguments expected, got %q", fs.Args())
	}
	if *to <= 0 || *to > 1<<20 {
		return usageErrorf(fs, rescaleUsage, "rescale: --to M (the new partition count, > 0) is required")
	}
	if *path == "" {
		*path = os.Getenv("TRIGGERD_CONFIG")
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	res, err := rescale.Run(ctx, cfg.Kafka, rescale.Options{To: int32(*to), Progress: stderr, Log: zap.NewNop()})
	if res.From > 0 {
		printRescale(stdout, res)
	}
	if err != nil {
		return fmt.Errorf("rescale: %w", err)
	}
	if res.AlreadyDone {
		fmt.Fprintf(stderr, "rescale: already done: %s holds the state in %d partitions; nothing written\n", res.Changelog, res.To)
	}
	fmt.Fprintln(stderr, res.Summary())
	return nil
}

// printRescale prints the new layout: the settings to change and what the
// producers of the co-partitioned inputs must do.
func printRescale(w io.Writer, res rescale.Result) {
	fmt.Fprintf(w, "Rescale from %d to %d partitions: changelog %s -> %s\n", res.From, res.To, res.SourceChangelog, res.Changelog)
	fmt.Fprintln(w, "\nStart the deployment with these settings (YAML path: value; or the environment variable):")
	for _, s := range res.Settings {
		env := "TRIGGERD_" + strings.ToUpper(strings.ReplaceAll(s.Path, ".", "_"))
		fmt.Fprintf(w, "  %s: %s    (%s=%s)\n", s.Path, s.Value, env, s.Value)
	}
	if len(res.Moved) > 0 {
		fmt.Fprintf(w, "\nProducers of the co-partitioned inputs: write to the new topics (%d partitions, same key and partitioner):\n", res.To)
		old := make([]string, 0, len(res.Moved))
		for t := range res.Moved {
			old = append(old, t)
		}
		sort.Strings(old)
		for _, t := range old {
			fmt.Fprintf(w, "  %s -> %s\n", t, res.Moved[t])
		}
		fmt.Fprintln(w, "  Records written to the old topics after the rescale are not read: switch before it, or stop the producers.")
	}
	for _, t := range res.Recreated {
		fmt.Fprintf(w, "\nInternal topic %s: recreated with %d partitions (raw inputs need no producer change).\n", t, res.To)
	}
}
