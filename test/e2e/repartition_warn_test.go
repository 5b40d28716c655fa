package e2e

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRawInputAtLeastOnceWithoutDedupeWarns: at least once, the stage may
// write a raw record twice after a crash, and only the rules' dedupe tells
// the copies apart, so a raw input without it is warned about at start,
// naming the fix; with dedupe, nothing is said.
func TestRawInputAtLeastOnceWithoutDedupeWarns(t *testing.T) {
	for _, tc := range []struct {
		name string
		rs   func(*testing.T) *rules.Set
		warn bool
	}{
		{"no dedupe", func(t *testing.T) *rules.Set { return harness.CartRules(t) }, true},
		{"dedupe", dedupeCartRules, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := harness.NewCluster(t)
			cfg := c.Topics(t, 2)
			cfg.IdleAdvance = true
			cfg.Guarantee = processor.AtLeastOnce
			rawSetup(t, c, &cfg, 3)
			core, logs := observer.New(zapcore.InfoLevel)
			harness.StartProcessor(t, cfg, tc.rs(t), nil, processor.Options{Logger: zap.New(core)})
			// The stage logs that it started after the warning would be.
			started := func() bool { return logs.FilterMessage("repartition stage started").Len() > 0 }
			for end := time.Now().Add(30 * time.Second); !started() && time.Now().Before(end); {
				time.Sleep(20 * time.Millisecond)
			}
			if !started() {
				t.Fatal("the repartition stage did not start within 30s")
			}
			warned := logs.FilterLevelExact(zapcore.WarnLevel).Filter(func(e observer.LoggedEntry) bool {
				return strings.Contains(e.Message, "without dedupe") && strings.Contains(e.Message, "set dedupe in the rules file")
			}).Len()
			if tc.warn && warned != 1 {
				t.Errorf("%d warnings about the missing dedupe, want 1", warned)
			}
			if !tc.warn && warned != 0 {
				t.Errorf("warned about a missing dedupe with dedupe set")
			}
		})
	}
}
