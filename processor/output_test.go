package processor

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// TestOutputIgnoresClosedClient: a record of an ended session, failed with
// ErrClientClosed, does not drop the next session's cycle; any other
// produce error does.
func TestOutputIgnoresClosedClient(t *testing.T) {
	o := &output{log: zap.NewNop()}
	r := &kgo.Record{Topic: "changelog", Partition: 2}
	o.failed(r, kgo.ErrClientClosed)
	o.failed(r, fmt.Errorf("wrapped: %w", kgo.ErrClientClosed))
	if err := o.takeErr(); err != nil {
		t.Fatalf("a closed client's record failed the cycle: %v", *err)
	}
	boom := errors.New("record too large")
	o.failed(r, boom)
	err := o.takeErr()
	if err == nil || !errors.Is(*err, boom) {
		t.Fatalf("takeErr = %v, want the produce error", err)
	}
	if again := o.takeErr(); again != nil {
		t.Fatalf("takeErr did not clear the error: %v", *again)
	}
}
