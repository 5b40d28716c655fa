package system

import (
	"os"
	"testing"

	"github.com/triggerd/triggerd/test/harness"
)

// TestMain removes the triggerd binary the tests share (built once, on
// first use) when they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveTriggerd()
	os.Exit(code)
}
