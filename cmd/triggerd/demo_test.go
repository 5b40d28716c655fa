package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo end to end for a short while with delays of a few
// seconds and checks what a new user is promised: triggers of several rule
// kinds printed one per line, summaries by kind, and a clean end.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs the whole demo for 15s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := runDemo(ctx, &out, demoSettings{
		rate: 400, customers: 500, partitions: 2,
		stage1: 2 * time.Second, stage2: 2 * time.Second,
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
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("demo output lacks a line matching %s", re)
		}
	}
	if t.Failed() {
		lines := strings.Split(text, "\n")
		t.Logf("demo output (last lines):\n%s", strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
}
