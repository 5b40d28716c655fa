package rules

import (
	"errors"
	"strings"
	"testing"
)

// TestPolicyErrors checks that every problem of a policy section is
// reported at once, each with its line and column.
func TestPolicyErrors(t *testing.T) {
	src := `rules:
  - {id: promo, version: 1, family: behavioral, on: [promo], channel: email, contact: {quiet_hours: later}}
policy:
  exempt: {families: [risk]}
  consent: maybe
  quiet_hours: {from: "25:00", to: "08:00"}
  stop_after: {unanswered: 0, engagement: [email_open]}
  caps:
    - {name: email_7d, channel: email, max: 2, window: 7d, segments: {champions: 4}}
    - {name: email_7d, rule: nosuch, max: -1, window: 0s}
`
	_, err := Parse("p.yaml", []byte(src))
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("want a LoadError, got %v", err)
	}
	want := []string{
		"p.yaml:2:101: contact.quiet_hours: \"later\" is not defer or drop",
		"p.yaml:4:23: exempt.families: \"risk\"",
		"p.yaml:5:12: consent: \"maybe\"",
		"p.yaml:6:23: quiet_hours.from: \"25:00\"",
		"p.yaml:7:15: stop_after.unanswered must be >= 1",
		"p.yaml:9:71: cap email_7d: segment \"champions\", but the rules file has no segments section",
		"p.yaml:10:14: cap \"email_7d\" defined twice",
		"p.yaml:10:30: cap email_7d: no rule \"nosuch\"",
		"p.yaml:10:43: cap email_7d: max must be >= 0",
		"p.yaml:10:47: cap email_7d: window must be > 0",
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	if len(le.Errs) != len(want) {
		t.Errorf("%d errors, want %d:\n%s", len(le.Errs), len(want), got)
	}

	// contact settings without a policy are an error too.
	_, err = Parse("q.yaml", []byte("rules:\n  - {id: a, version: 1, family: behavioral, on: [x], channel: email, contact: {max_delay: 1h}}\n"))
	if err == nil || !strings.Contains(err.Error(), "q.yaml:2:") || !strings.Contains(err.Error(), "need a policy section") {
		t.Fatalf("contact without policy: %v", err)
	}
}

// TestExamplePolicy checks the shipped policy compiles with the
// parameters of docs/scenarios.md.
func TestExamplePolicy(t *testing.T) {
	s, err := ExampleSet()
	if err != nil {
		t.Fatal(err)
	}
	p := s.policy
	if p == nil || p.quiet == nil || p.quiet.from != 21*60 || p.quiet.to != 8*60 || p.stopAfter != 5 {
		t.Fatalf("example policy: %+v", p)
	}
	caps := map[string]capSpec{}
	for _, c := range p.caps {
		caps[c.name] = c
	}
	if c := caps["email_7d"]; c.max != 2 || c.segments["champions"] != 4 || c.window.Hours() != 7*24 {
		t.Errorf("email_7d: %+v", c)
	}
	if c := caps["push_1d"]; c.max != 1 || c.window.Hours() != 24 {
		t.Errorf("push_1d: %+v", c)
	}
	if !p.exemptFamilies[Anomaly] || !p.exemptFamilies[Transactional] || p.exemptFamilies[Behavioral] {
		t.Errorf("exemptions: %v", p.exemptFamilies)
	}
	if ns, _ := ExampleSetWithoutPolicy(); ns.HasPolicy() {
		t.Error("ExampleSetWithoutPolicy has a policy")
	}
}
