package script_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/rules/script"
)

// TestScripts runs every script in rules/testdata against the example rules (a
// script may replace them with a "rules" directive). One script per
// behaviour of the behaviour catalogue, each with what must not fire. The
// contact policy's scripts (policy_*.txt) run with the example's policy;
// the others show their rule alone, without it.
// Regenerate with -rewrite, then read every line of the diff.
func TestScripts(t *testing.T) {
	// The scripts are the .txt files; testdata/fuzz holds the parser's
	// fuzz corpus, which is not a script.
	paths, err := filepath.Glob("../testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts in ../testdata (%v)", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) { runScript(t, path) })
	}
}

func runScript(t *testing.T, path string) {
	load := rules.ExampleSetWithoutPolicy
	if strings.HasPrefix(filepath.Base(path), "policy_") {
		load = rules.ExampleSet
	}
	set, err := load()
	if err != nil {
		t.Fatal(err)
	}
	r := script.New(set)
	datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
		out, err := r.Do(d.Cmd, d.CmdArgs, d.Input)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		return out
	})
}
