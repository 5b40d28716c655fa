package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
)

// TestDemo runs the demo end to end for a short while with delays of a few
// seconds and checks what a new user is promised: triggers of several rule
// kinds printed one per line, summaries by kind, the calendar kinds even
// when the demo starts late in a minute (its clock is moved to second 50,
// where the demo used to wait more than a minute for them), and the totals
// of every kind at the end.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs the whole demo for 15s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	now := time.Now()
	offset := time.Duration(50-now.Second())*time.Second - time.Duration(now.Nanosecond())
	var out bytes.Buffer
	err := runDemo(ctx, &out, demoSettings{
		rate: 400, customers: 500, partitions: 2,
		stage1: 2 * time.Second, stage2: 2 * time.Second,
		clock: func() time.Time { return time.Now().Add(offset) },
	})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^\d\d:\d\d:\d\d  cart_abandoned +stage=1 email customer=c-\d+ items=\d+ value=\d+\.\d\d EUR id=[0-9a-f]{12}$`,
		`(?m)^\d\d:\d\d:\d\d  cart_abandoned +stage=2 push +customer=c-\d+`,
		// Marketing passes the contact policy (caps, consent by
		// opt-out), so which kinds make it in 15 s varies; one must.
		`(?m)^\d\d:\d\d:\d\d  (welcome|loyalty_milestone|vip_threshold|coupon_reminder|product_interest|birthday|anniversary|contract_end|winback|retention_offer|loyalty_upgrade) +stage=\d email +customer=c-\d+`,
		`(?m)^\d\d:\d\d:\d\d  post_purchase +stage=1 email +customer=c-\d+`,
		`(?m)^-- +\d+s  events=\d+ \(\d+/s\)  triggers=\d+ \[.*cart_abandoned=\d+.*\]  pending_timers=\d+  dead_letters=0  suppressed=\[.*\]$`,
		`(?m)^demo finished: \d+ events.* suppressed by the contact policy \[.*\]$`,
		`(?m)^triggers by kind:$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("demo output lacks a line matching %s", re)
		}
	}
	// The totals list every kind of the demo's rules, the calendar's
	// with triggers written.
	for _, kind := range []string{"cart_abandoned", "post_purchase", "pre_departure", "welcome", "coupon_reminder",
		"product_interest", "birthday", "anniversary", "contract_end", "profile_refresh", "vip_threshold",
		"loyalty_milestone", "winback", "fraud_velocity", "fraud_amount_outlier", "fraud_geo_jump", "loyalty_upgrade"} {
		if !regexp.MustCompile(`(?m)^  ` + kind + ` +\d+$`).MatchString(text) {
			t.Errorf("the totals by kind lack %s", kind)
		}
	}
	for _, kind := range []string{"birthday", "anniversary", "contract_end"} {
		if !regexp.MustCompile(`(?m)^  ` + kind + ` +[1-9]\d*$`).MatchString(text) {
			t.Errorf("a demo started at second 50 wrote no %s trigger in 15 s", kind)
		}
	}
	if t.Failed() {
		lines := strings.Split(text, "\n")
		t.Logf("demo output (last lines):\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// TestDemoCalendarDueAtAnyStart starts the demo's clock at every second of
// a minute (and around Berlin's midnight) and checks, with the demo's own
// rules file and the rules engine, that a profile with a birthday of today
// sent a second after the start gets its birthday trigger calendarLead
// after the start, in event time.
func TestDemoCalendarDueAtAnyStart(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	var starts []time.Time
	for sec := range 60 {
		starts = append(starts, time.Date(2026, 3, 12, 14, 7, sec, 437_000_000, berlin))
	}
	for sec := 20; sec < 60; sec += 7 {
		starts = append(starts, time.Date(2026, 3, 12, 23, 59, sec, 0, berlin))
	}
	for _, start := range starts {
		t.Run(start.Format("15:04:05.000"), func(t *testing.T) {
			at, shift := demoClock(start)
			evStart := start.Add(shift)
			if at.Second() != 0 || at.Nanosecond() != 0 {
				t.Fatalf("calendar time %v is not a whole minute", at)
			}
			if got := at.Sub(evStart); got != calendarLead {
				t.Errorf("calendar rules due %v after the event clock's start, want %v", got, calendarLead)
			}
			if shift < -30*time.Second || shift > 90*time.Second {
				t.Errorf("events stamped %v off the wall clock", shift)
			}
			path, clock, err := writeDemoRules(t.TempDir(), 2*time.Second, 2*time.Second, at)
			if err != nil {
				t.Fatal(err)
			}
			if want := at.In(berlin).Format("15:04"); clock != want {
				t.Errorf("calendar rules at %s, want %s", clock, want)
			}
			set, err := rules.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			sent := evStart.Add(time.Second).In(berlin)
			c := &schemas.Customer{ID: "c-1"}
			ev := schemas.Event{Source: schemas.SourceProfile, ID: "p1", Customer: c.ID, Type: schemas.ProfileUpdate,
				Time: sent.UTC(), Profile: schemas.Profile{TimeZone: "Europe/Berlin",
					Birthday: schemas.Date{Year: 1980, Month: sent.Month(), Day: sent.Day()}}}
			var a rules.Actions
			set.OnEvent(c, &ev, &a)
			var due []schemas.Timer
			for _, tm := range a.Schedule {
				if tm.Rule == "birthday" {
					due = append(due, tm)
				}
			}
			if len(due) != 1 || !due[0].Due.Equal(at) {
				t.Fatalf("birthday timers %v, want one due at %v", due, at)
			}
			a.Reset()
			set.OnTimersAt(c, due, at, &a)
			if len(a.Emit) != 1 || a.Emit[0].Rule != "birthday" {
				t.Errorf("at %v the birthday timer emitted %v, suppressed %v", at, a.Emit, a.Suppress)
			}
		})
	}
}

// TestDemoKindTotals checks the totals block: every kind of the rules in
// their order, 0 for one that did not fire, then kinds counted that the
// rules do not name.
func TestDemoKindTotals(t *testing.T) {
	got := kindTotals([]string{"winback", "birthday"}, map[string]int64{"winback": 3, "erased": 1})
	want := "triggers by kind:\n" + fmt.Sprintf("  %-22s %d\n  %-22s %d\n  %-22s %d\n", "winback", 3, "birthday", 0, "erased", 1)
	if got != want {
		t.Errorf("totals:\n%s\nwant:\n%s", got, want)
	}
}
