package processor

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestKgoLogger: of kgo's info lines only the group's lifecycle reaches
// the log (not the several lines of every transaction); warnings always do,
// and a processor logging at warn asks kgo for nothing below.
func TestKgoLogger(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := newKgoLogger(zap.New(core))
	if l.Level() != kgo.LogLevelInfo {
		t.Errorf("level %v at info, want info", l.Level())
	}
	l.Log(kgo.LogLevelInfo, "joining group", "group", "g")
	l.Log(kgo.LogLevelInfo, "fetch offsets failed with retryable partition error, waiting 1s and retrying", "group", "g")
	l.Log(kgo.LogLevelInfo, "beginning transaction", "transactional_id", "g-i1")
	l.Log(kgo.LogLevelInfo, "flushing")
	l.Log(kgo.LogLevelWarn, "unable to open connection to broker")
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
	}
	want := []string{"joining group", "fetch offsets failed with retryable partition error, waiting 1s and retrying", "unable to open connection to broker"}
	if len(got) != len(want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i])
		}
	}

	warnCore, _ := observer.New(zapcore.WarnLevel)
	if lvl := newKgoLogger(zap.New(warnCore)).Level(); lvl != kgo.LogLevelWarn {
		t.Errorf("level %v at warn, want warn", lvl)
	}
}
