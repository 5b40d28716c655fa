package script_test

import (
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/rules/script"
)

// TestScripts runs every script in rules/testdata against the example rules (a
// script may replace them with a "rules" directive). One script per
// behaviour of the behaviour catalogue, each with what must not fire.
// Regenerate with -rewrite, then read every line of the diff.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "../testdata", func(t *testing.T, path string) {
		set, err := rules.ExampleSet()
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
	})
}
