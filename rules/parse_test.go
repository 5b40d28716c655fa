package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// TestParseReportsEveryError checks that one bad file yields every problem,
// each with its file, line and column, in file order.
func TestParseReportsEveryError(t *testing.T) {
	src := `events: [purchase, purchase]
defaults: {time_zone: Mars/Olympus, expiry: 3 days}
dedupe: {window: 0s}
aggregates:
  n: {on: [purchase], window: 10m, max: 5, count: true, sum: event.amount}
rules:
  - id: a
    version: 1
    family: anomaly
    channel: risk
    on: [page_view]
    when: agg.nope > 1
  - id: a
    version: 1
    family: threshold
    channel: email
    threshold: {on: [purchase], value: event.country, at_least: 5}
  - id: b
    version: 1
    family: behavioral
    channel: email
    sequence:
      start: {on: [purchase], kee: event.order_id}
      stages: [{delay: 1h, at: now}]
    colour: red
`
	_, err := Parse("bad.yaml", []byte(src))
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Parse() = %v, want a *LoadError", err)
	}
	want := []string{
		`bad.yaml:1:20: event type "purchase" listed twice`,
		`bad.yaml:2:23: time_zone: unknown IANA zone "Mars/Olympus"`,
		`bad.yaml:2:45: expiry: bad duration "3 days"`,
		`bad.yaml:3:10: dedupe.window must be > 0`,
		`bad.yaml:5:6: aggregate n: give exactly one of count, sum, distinct, by`,
		`bad.yaml:11:10: event type "page_view" is not in the events catalogue`,
		`bad.yaml:12:11: when: undeclared reference to 'agg' (triggerd rules vars lists the variables; agg.NAME needs an aggregate NAME)`,
		`bad.yaml:13:5: rule id "a" used twice`,
		`bad.yaml:17:40: value must be of type int, is string`,
		`bad.yaml:23:31: unknown field "kee" in sequence.start`,
		`bad.yaml:24:16: stage 1: give delay or at, not both`,
		`bad.yaml:25:5: unknown field "colour" in a rule`,
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, "rules: "+w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
	if len(le.Errs) != len(want) {
		t.Errorf("%d errors, want %d", len(le.Errs), len(want))
	}
	for i := 1; i < len(le.Errs); i++ {
		if le.Errs[i].Line < le.Errs[i-1].Line {
			t.Errorf("errors not in file order:\n%s", got)
		}
	}
}

func TestParseYAMLSyntaxError(t *testing.T) {
	_, err := Parse("x.yaml", []byte("rules:\n  - id: a\n    on: [purchase\n"))
	if err == nil || !strings.Contains(err.Error(), "rules: x.yaml:") || !strings.Contains(err.Error(), "did not find expected") {
		t.Fatalf("Parse() = %v, want a positioned YAML error", err)
	}
	if _, err := Parse("empty.yaml", nil); err == nil || !strings.Contains(err.Error(), "empty rules file") {
		t.Fatalf("empty file: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"3d": 72 * time.Hour, "24h": 24 * time.Hour, "10m": 10 * time.Minute, "1d12h": 36 * time.Hour,
		"-60d": -60 * 24 * time.Hour, "0s": 0, "0d": 0, "1h30m": 90 * time.Minute,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "3 days", "1d-2h", "x1h", "1.5d", "--1h"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

// TestLocalTime pins the documented DST resolution in two hemispheres and
// the 29 February rule.
func TestLocalTime(t *testing.T) {
	load := func(n string) *time.Location {
		l, err := time.LoadLocation(n)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ber, syd := load("Europe/Berlin"), load("Australia/Sydney")
	for _, c := range []struct {
		d      schemas.Date
		hh, mm int
		loc    *time.Location
		want   string
	}{
		{schemas.Date{Year: 2026, Month: 3, Day: 29}, 2, 30, ber, "2026-03-29T01:30:00Z"},  // gap: forward to 03:30 CEST
		{schemas.Date{Year: 2026, Month: 10, Day: 25}, 2, 30, ber, "2026-10-25T00:30:00Z"}, // overlap: first (CEST)
		{schemas.Date{Year: 2026, Month: 7, Day: 1}, 9, 0, ber, "2026-07-01T07:00:00Z"},
		{schemas.Date{Year: 2026, Month: 10, Day: 4}, 2, 30, syd, "2026-10-03T16:30:00Z"}, // Sydney gap: 03:30 AEDT
		{schemas.Date{Year: 2026, Month: 4, Day: 5}, 2, 30, syd, "2026-04-04T15:30:00Z"},  // Sydney overlap: first (AEDT)
	} {
		if got := localTime(c.d, c.hh, c.mm, c.loc).UTC().Format(time.RFC3339); got != c.want {
			t.Errorf("localTime(%s %02d:%02d %s) = %s, want %s", c.d, c.hh, c.mm, c.loc, got, c.want)
		}
	}
	if got := anniversary(schemas.Date{Year: 1992, Month: 2, Day: 29}, 2027); got.String() != "2027-02-28" {
		t.Errorf("29 Feb in 2027 = %s", got)
	}
	if got := anniversary(schemas.Date{Year: 1992, Month: 2, Day: 29}, 2028); got.String() != "2028-02-29" {
		t.Errorf("29 Feb in 2028 = %s", got)
	}
}
