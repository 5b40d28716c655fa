package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a measured child process: its CPU time and peak RSS come from
// /proc/<pid>, so they are the process's own and not the benchmark's.
// (harness.Child does not expose its pid; this is the benchmark's own.)
type proc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func startProc(b *testing.B, logPath, bin string, args ...string) *proc {
	log, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	p := &proc{cmd: exec.Command(bin, args...), logPath: logPath, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	// The config file is the whole configuration.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRIGGERD_") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	// Go's soft memory limit, as the Helm chart sets it (goMemLimit) for
	// its 1536Mi container: every child, the peer's too, runs with it.
	p.cmd.Env = append(p.cmd.Env, "GOMEMLIMIT="+envString("BENCH_GOMEMLIMIT", "1300MiB"))
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p
}

// exited returns an error once the process has exited.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("exited: %v (log %s; its last lines below, TEST_KEEP_DIR=dir keeps it)\n%s", p.err, p.logPath, p.logTail(8))
	default:
		return nil
	}
}

// stop ends the process with SIGTERM, then SIGKILL after 60 s.
func (p *proc) stop(b *testing.B) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		logf("%s did not stop within 60s of SIGTERM: killed", p.cmd.Path)
	}
	if n, first := p.warnings(3); n > 0 {
		logf("the processor logged %d warnings or errors; the first:\n%s", n, strings.Join(first, "\n"))
	}
}

// warnings counts the log's WARN and ERROR lines and returns the first n
// distinct messages: a run that dropped cycles or lost its session is not
// measuring the steady state, and its figures need that said next to them.
func (p *proc) warnings(n int) (int, []string) {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return 0, nil
	}
	count, seen := 0, map[string]bool{}
	var first []string
	for _, line := range strings.Split(string(data), "\n") {
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || (l.Level != "warn" && l.Level != "error") {
			continue
		}
		count++
		if !seen[l.Msg] && len(first) < n {
			seen[l.Msg] = true
			first = append(first, line)
		}
	}
	return count, first
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux
// for every architecture Go supports.
const clockTick = 100

// cpu returns the process's user + system CPU time so far.
func (p *proc) cpu() time.Duration { return pidCPU(p.cmd.Process.Pid) }

// peakRSS returns VmHWM in bytes.
func (p *proc) peakRSS() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// logTail returns the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
