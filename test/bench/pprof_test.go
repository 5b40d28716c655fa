package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// startProfile starts a CPU profile of the processor child through its ops
// endpoint (ops.pprof) when BENCH_PPROF names a directory, and returns the
// function that waits for it and writes <dir>/<name>.pprof. Without
// BENCH_PPROF it does nothing. Go's profiler runs for a fixed time (a
// cancelled request loses the profile), so the profile covers the first
// d of the phase: make the phase longer than d.
func startProfile(b *testing.B, s settings, ops, name string, d time.Duration) (wait func()) {
	if s.pprofDir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := filepath.Join(s.pprofDir, name+".pprof")
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", ops, max(1, int(d.Seconds())))
		if err := fetchProfile(url, path); err != nil {
			logf("profile %s: %v", name, err)
			return
		}
		logf("profile %s (%s) written to %s", name, d, path)
	}()
	return func() { <-done }
}

// fetchProfile gets a profile, waiting up to 30 s for the endpoint to
// listen: the raw rows' profile starts with the process.
func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	for tries := 0; err != nil && tries < 300; tries++ {
		time.Sleep(100 * time.Millisecond)
		resp, err = http.Get(url)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
