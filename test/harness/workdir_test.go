package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestWorkDirHelper is run by TestWorkDirKeptOnFailure in a child process:
// it writes a file into its work directory, prints the directory, and fails
// or passes as told.
func TestWorkDirHelper(t *testing.T) {
	outcome := os.Getenv("HARNESS_WORKDIR_HELPER")
	if outcome == "" {
		return // not run as a helper
	}
	dir := WorkDir(t)
	if err := os.WriteFile(filepath.Join(dir, "triggerd.log"), []byte("a line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("workdir=%s", dir)
	if outcome == "fail" {
		t.Errorf("failing on purpose")
	}
}

// A failed test keeps its work directory and says where it is; a passed
// one leaves nothing behind.
func TestWorkDirKeptOnFailure(t *testing.T) {
	pathRe := regexp.MustCompile(`workdir=(\S+)`)
	keptRe := regexp.MustCompile(`work directory is kept \(processor logs, configs, state\): (\S+)`)
	for _, outcome := range []string{"fail", "pass"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWorkDirHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "HARNESS_WORKDIR_HELPER="+outcome, "TEST_KEEP_DIR=")
		out, err := cmd.CombinedOutput()
		if (err != nil) != (outcome == "fail") {
			t.Fatalf("helper told to %s: %v\n%s", outcome, err, out)
		}
		m := pathRe.FindSubmatch(out)
		if m == nil {
			t.Fatalf("helper printed no work directory:\n%s", out)
		}
		dir := string(m[1])
		if !strings.Contains(filepath.ToSlash(dir), keptDirs+"/TestWorkDirHelper-") {
			t.Errorf("work directory %s is not under the repository's %s", dir, keptDirs)
		}
		_, statErr := os.Stat(filepath.Join(dir, "triggerd.log"))
		switch outcome {
		case "fail":
			k := keptRe.FindSubmatch(out)
			if k == nil || string(k[1]) != dir {
				t.Errorf("the failed helper did not name its kept directory %s:\n%s", dir, out)
			}
			if statErr != nil {
				t.Errorf("the failed helper's log is gone: %v", statErr)
			}
			os.RemoveAll(dir)
		case "pass":
			if !os.IsNotExist(statErr) {
				t.Errorf("the passed helper's work directory %s is still there (%v)", dir, statErr)
				os.RemoveAll(dir)
			}
		}
	}
}

func TestWithoutStacktrace(t *testing.T) {
	l := `{"level":"error","msg":"group manage loop errored","err":"EOF","stacktrace":"github.com/x.(*L).Log\n\t/a/b.go:1"}`
	if got, want := withoutStacktrace(l), `{"level":"error","msg":"group manage loop errored","err":"EOF"}`; got != want {
		t.Errorf("withoutStacktrace = %s, want %s", got, want)
	}
	if l := `{"level":"warn","msg":"restore waiting","abort_command":"kafka-transactions.sh abort"}`; withoutStacktrace(l) != l {
		t.Errorf("a line without a stacktrace changed: %s", withoutStacktrace(l))
	}
}
