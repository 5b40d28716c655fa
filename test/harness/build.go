package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built is the triggerd binary of this test process: linking it takes
// seconds (minutes over a package of system tests, each of which needs it),
// and every test of a package runs the same source.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// BuildTriggerd builds the binary, once per test process, as the release
// image does (deploy/Dockerfile): without cgo, so that Pebble's block cache
// and memtables are Go memory, under GOMEMLIMIT, as in production (with cgo
// they are C memory, outside it). TRIGGERD_TEST_CGO=1 builds with cgo, to
// compare. The package's TestMain removes it (RemoveTriggerd).
func BuildTriggerd(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "triggerd-test-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir, built.bin = dir, filepath.Join(dir, "triggerd")
		cmd := exec.Command("go", "build", "-tags", "timetzdata", "-o", built.bin, "github.com/triggerd/triggerd/cmd/triggerd")
		cgo := "0"
		if os.Getenv("TRIGGERD_TEST_CGO") == "1" {
			cgo = "1"
		}
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			built.err = fmt.Errorf("go build: %w", err)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// RemoveTriggerd removes the binary BuildTriggerd built, if any: a package
// whose tests build it calls it from TestMain after m.Run.
func RemoveTriggerd() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}
