package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/triggerd/triggerd/cmd/triggerd/backtest"
	"github.com/triggerd/triggerd/rules"
)

const backtestUsage = `Usage:
  triggerd backtest --rules CANDIDATE.yaml [--baseline CURRENT.yaml] --from T1 [--to T2]
                    [--config FILE] [--json OUT.json] [--html REPORT.html]

Replays the retained input topics of the configured cluster through the
baseline and the candidate rules, each with the production rules engine and
contact policy in a scratch state on an in-process Kafka, and reports how
their triggers, suppressions and deferrals differ for event times in
[T1, T2). The cluster is only read: nothing is written to it. The state as
of T1 is rebuilt from the inputs retained before it (--warm-up bounds how
far back), so anything older than the topics' retention is missing.

Times are RFC 3339 (2026-03-01T00:00:00Z) or dates (2026-03-01, UTC). The
baseline defaults to the configuration's rules (rules.file, else the
example rules). Progress goes to stderr every few seconds; the summary to
stdout.
`

func backtestCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	path := fs.String("config", "", "the configuration `FILE` (default: $TRIGGERD_CONFIG, else the defaults)")
	candPath := fs.String("rules", "", "the candidate rules `FILE` (required)")
	basePath := fs.String("baseline", "", "the baseline rules `FILE` (default: the configuration's rules)")
	fromS := fs.String("from", "", "start of the range, event time (`T1`, required)")
	toS := fs.String("to", "", "end of the range, exclusive (`T2`; default: now)")
	warm := fs.Duration("warm-up", 0, "event time replayed before --from to rebuild the state (default: all retained)")
	jsonOut := fs.String("json", "", "write the report as JSON to `FILE`")
	htmlOut := fs.String("html", "", "write the report as a self-contained HTML page to `FILE`")
	if err := parseFlags(fs, backtestUsage, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, backtestUsage, "backtest: no arguments expected, got %q", fs.Args())
	}
	if *candPath == "" || *fromS == "" {
		return usageErrorf(fs, backtestUsage, "backtest: --rules and --from are required")
	}
	from, err := parseWhen(*fromS)
	if err != nil {
		return usageErrorf(fs, backtestUsage, "backtest: --from: %v", err)
	}
	to := time.Now().UTC()
	if *toS != "" {
		if to, err = parseWhen(*toS); err != nil {
			return usageErrorf(fs, backtestUsage, "backtest: --to: %v", err)
		}
	}
	if *path == "" {
		*path = os.Getenv("TRIGGERD_CONFIG")
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	candidate, err := rules.Load(*candPath)
	if err != nil {
		return err
	}
	baseline, err := cfg.Rules.load()
	if *basePath != "" {
		baseline, err = rules.Load(*basePath)
	}
	if err != nil {
		return err
	}
	log, err := newLogger("warn")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	rep, err := backtest.Run(ctx, backtest.Options{
		Source: cfg.Kafka, Baseline: baseline, Candidate: candidate, From: from, To: to, WarmUp: *warm,
		Log: log, Progress: stderr,
	})
	if err != nil {
		return err
	}
	if *jsonOut != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *htmlOut != "" {
		f, err := os.Create(*htmlOut)
		if err != nil {
			return err
		}
		if err := rep.WriteHTML(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return rep.WriteText(stdout)
}

// parseWhen reads an RFC 3339 time or a date (midnight UTC).
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-03-01T00:00:00Z) nor a date (2026-03-01)", s)
	}
	return t, nil
}
