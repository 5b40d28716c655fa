package harness

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// keptDirs is where the work directories of tests live while they run and
// stay when they fail: inside the test broker's cache, which git ignores.
const keptDirs = "test/kafka/.cache/tests"

// keepFailed bounds the failed tests' directories kept: the oldest go when a
// new test starts (a processor's state can take hundreds of megabytes).
const keepFailed = 10

// WorkDir returns a directory for a test's processor logs, configs and
// Pebble state. A test that passes removes it; one that fails keeps it and
// says where (the failure messages also name it), so that the logs and the
// state can be read after the run: test/kafka/.cache/tests/<test>-<time>-<n>
// in the repository. With $TEST_KEEP_DIR set, it is a directory under that
// one, kept whatever the outcome.
func WorkDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("TEST_KEEP_DIR"); d != "" {
		d = filepath.Join(d, safeName(t.Name()))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	root, err := keptRoot()
	if err != nil {
		t.Logf("no repository cache for the work directory (%v): using a temporary one, removed at the end", err)
		return t.TempDir()
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	pruneKept(t, root, keepFailed)
	dir, err := os.MkdirTemp(root, safeName(t.Name())+"-"+time.Now().Format("20060102-150405")+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the test's children and log files are: cleanups
	// run last-in first-out, so the children are stopped and the logs
	// closed by the time this runs.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the failed test's work directory is kept (processor logs, configs, state): %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing the work directory %s: %v", dir, err)
		}
	})
	return dir
}

// keptRoot finds the repository (the directory holding go.mod, upwards from
// the test's package) and returns its directory for kept work directories.
func keptRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, filepath.FromSlash(keptDirs)), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// pruneKept removes all but the newest keep directories under root that
// were last modified more than an hour ago (a younger one may belong to a
// test running in parallel).
func pruneKept(t testing.TB, root string, keep int) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type dir struct {
		path string
		mod  time.Time
	}
	var dirs []dir
	for _, e := range entries {
		if info, err := e.Info(); err == nil && e.IsDir() {
			dirs = append(dirs, dir{filepath.Join(root, e.Name()), info.ModTime()})
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].mod.After(dirs[j].mod) })
	for i, d := range dirs {
		if i >= keep && time.Since(d.mod) > time.Hour {
			if err := os.RemoveAll(d.path); err != nil {
				t.Logf("pruning old work directory %s: %v", d.path, err)
			}
		}
	}
}

// safeName makes a test name usable as a file name.
func safeName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, name)
}
