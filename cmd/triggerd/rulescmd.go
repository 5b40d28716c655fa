package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/rules/script"
)

const rulesUsage = `Usage:
  triggerd rules check FILE...           compile rules files; list every error with its position
  triggerd rules test FILE SCRIPT...     run scripts against a rules file (see rules/script)
  triggerd rules vars                    the variables rule expressions can use
  triggerd rules example                 print the example rules built into the binary

FILE may be "example" for the built-in example rules.
`

// The usage of each rules subcommand ("triggerd rules check --help").
const (
	rulesCheckUsage = `Usage:
  triggerd rules check FILE...

Compiles each rules file and lists every error with its line and column, or
the file's rules. FILE may be "example" for the example rules built into the
binary. Exits 1 when a file has errors.
`
	rulesTestUsage = `Usage:
  triggerd rules test FILE SCRIPT...

Runs each script (events, a virtual clock and the triggers expected; see
rules/script) against the rules file FILE ("example": the built-in rules).
Exits 1 when a directive fails.
`
	rulesVarsUsage = `Usage:
  triggerd rules vars

Lists the variables rule expressions can use, with their types.
`
	rulesExampleUsage = `Usage:
  triggerd rules example

Prints the example rules built into the binary (the rules used when
rules.file is empty).
`
)

// rulesCmd is the tooling for rule authors. It returns the exit code.
func rulesCmd(args []string, stdout, stderr io.Writer) int {
	rc, err := rulesRun(args, stdout, stderr)
	if err != nil {
		return exitCode(err, stderr)
	}
	return rc
}

// rulesRun runs a rules subcommand: an error for a command line that cannot
// run (or help), else the exit code.
func rulesRun(args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		return 0, usageErrorf(nil, rulesUsage, "rules: a subcommand is required")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, rulesUsage)
		return 0, nil
	case "check":
		fs := flag.NewFlagSet("rules check", flag.ContinueOnError)
		if err := parseFlags(fs, rulesCheckUsage, args[1:], stdout); err != nil {
			return 0, err
		}
		if fs.NArg() < 1 {
			return 0, usageErrorf(fs, rulesCheckUsage, "rules check: a rules file is required")
		}
		rc := 0
		for _, f := range fs.Args() {
			s, err := loadRulesArg(f)
			if err != nil {
				fmt.Fprintln(stderr, err)
				rc = 1
				continue
			}
			fmt.Fprintf(stdout, "%s: ok, %d rules\n", f, len(s.Rules()))
			for _, r := range s.Rules() {
				fmt.Fprintf(stdout, "  %-22s v%-3d %-13s %-9s stages=%d kind=%s\n", r.ID, r.Version, r.Family, r.Start, r.Stages, r.Kind)
			}
		}
		return rc, nil
	case "test":
		fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
		if err := parseFlags(fs, rulesTestUsage, args[1:], stdout); err != nil {
			return 0, err
		}
		if fs.NArg() < 2 {
			return 0, usageErrorf(fs, rulesTestUsage, "rules test: a rules file and at least one script are required")
		}
		s, err := loadRulesArg(fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1, nil
		}
		passed, failed := 0, 0
		for _, path := range fs.Args()[1:] {
			p, f, err := runScript(s, path, stdout)
			passed, failed = passed+p, failed+f
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", path, err)
				failed++
			}
		}
		fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
		if failed > 0 {
			return 1, nil
		}
		return 0, nil
	case "vars":
		if err := noArgs("rules vars", rulesVarsUsage, args[1:], stdout); err != nil {
			return 0, err
		}
		for _, v := range rules.Vars() {
			fmt.Fprintf(stdout, "%-30s %-28s %s\n", v.Name, v.Type, v.Doc)
		}
		fmt.Fprintf(stdout, "%-30s %-28s %s\n", "agg.NAME", "int", "the aggregate NAME declared in the file, over its window")
		return 0, nil
	case "example":
		if err := noArgs("rules example", rulesExampleUsage, args[1:], stdout); err != nil {
			return 0, err
		}
		_, _ = stdout.Write(rules.Example())
		return 0, nil
	}
	return 0, usageErrorf(nil, rulesUsage, "rules: unknown subcommand %q", args[0])
}

// noArgs parses the command line of a subcommand that takes neither flags
// nor arguments (but --help).
func noArgs(name, usage string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if err := parseFlags(fs, usage, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, usage, "%s: no arguments expected, got %q", name, fs.Args())
	}
	return nil
}

func loadRulesArg(f string) (*rules.Set, error) {
	if f == "example" {
		return rules.ExampleSet()
	}
	return rules.Load(f)
}

// runScript runs one script and reports each directive whose output
// differs from the expected one. It returns the directives that passed and
// failed.
func runScript(s *rules.Set, path string, out io.Writer) (int, int, error) {
	ds, err := script.ParseFile(path)
	if err != nil {
		return 0, 0, err
	}
	if len(ds) == 0 {
		return 0, 0, errors.New("no directives")
	}
	r := script.New(s)
	passed, failed := 0, 0
	for _, d := range ds {
		got, err := r.Do(d.Cmd, d.Args, d.Input)
		if err != nil {
			fmt.Fprintf(out, "%s:%d: %s: %v\n", path, d.Line, d.Raw, err)
			failed++
			continue
		}
		if got == d.Expected {
			passed++
			continue
		}
		failed++
		fmt.Fprintf(out, "%s:%d: %s\n  expected:\n%s  got:\n%s", path, d.Line, d.Raw, indent(d.Expected), indent(got))
	}
	return passed, failed, nil
}

func indent(s string) string {
	if s == "" {
		return "    (nothing)\n"
	}
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}
