package processor

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// kgoLogger logs kgo's warnings and errors, and of its info lines only the
// consumer group's lifecycle: joins, assignments, revokes, heartbeat errors
// and the wait for a group's offsets that another producer's transaction
// holds. Those are the lines an SRE needs when a consumer stands still
// without an error. kgo's other info lines are several per transaction, so
// per cycle: too many for a log.
type kgoLogger struct{ *kzap.Logger }

func newKgoLogger(log *zap.Logger) kgo.Logger {
	level := kgo.LogLevelWarn
	if log.Core().Enabled(zap.InfoLevel) {
		level = kgo.LogLevelInfo
	}
	return kgoLogger{kzap.New(log, kzap.Level(level))}
}

// groupLifecycle holds the starts of the kgo info messages kgoLogger keeps.
var groupLifecycle = []string{
	"beginning to manage the group lifecycle", "joining group", "joined", "join returned",
	"syncing", "synced", "sync failed", "balanced", "new group session begun",
	"heartbeat errored", "heartbeat saw", "fetch offsets",
	"calling onRevoke", "eager consumer revoking", "cooperative consumer revoking", "leaving group",
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if level == kgo.LogLevelInfo && !hasAnyPrefix(msg, groupLifecycle) {
		return
	}
	l.Logger.Log(level, msg, keyvals...)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
