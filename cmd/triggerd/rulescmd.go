package main

import (
	"errors"
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

// rulesCmd is the tooling for rule authors.
func rulesCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, rulesUsage)
		return 2
	}
	switch args[0] {
	case "check":
		if len(args) < 2 {
			fmt.Fprint(stderr, rulesUsage)
			return 2
		}
		rc := 0
		for _, f := range args[1:] {
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
		return rc
	case "test":
		if len(args) < 3 {
			fmt.Fprint(stderr, rulesUsage)
			return 2
		}
		s, err := loadRulesArg(args[1])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		passed, failed := 0, 0
		for _, path := range args[2:] {
			p, f, err := runScript(s, path, stdout)
			passed, failed = passed+p, failed+f
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", path, err)
				failed++
			}
		}
		fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
		if failed > 0 {
			return 1
		}
		return 0
	case "vars":
		for _, v := range rules.Vars() {
			fmt.Fprintf(stdout, "%-30s %-28s %s\n", v.Name, v.Type, v.Doc)
		}
		fmt.Fprintf(stdout, "%-30s %-28s %s\n", "agg.NAME", "int", "the aggregate NAME declared in the file, over its window")
		return 0
	case "example":
		_, _ = stdout.Write(rules.Example())
		return 0
	}
	fmt.Fprintf(stderr, "triggerd rules: unknown command %q\n\n%s", args[0], rulesUsage)
	return 2
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
