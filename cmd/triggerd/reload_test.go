package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/rules"
)

// TestWatchRulesReloads checks the hot reload: a changed file is compiled
// and handed over; a bad one is logged with every error, and nothing is
// handed over (the running rules stay).
func TestWatchRulesReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, rules.CartOnlyYAML(time.Hour, 24*time.Hour), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	var mu sync.Mutex
	var got []*rules.Set
	var rejected atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchRules(ctx, RulesConfig{File: path, Poll: 10 * time.Millisecond}, zap.New(core), func(s *rules.Set) {
			mu.Lock()
			got = append(got, s)
			mu.Unlock()
		}, func() { rejected.Add(1) })
	}()
	defer func() { cancel(); <-done }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// touch replaces the file as a deploy does: written aside, its time
	// set, renamed over the old one, so that the watcher never reads it
	// half written.
	touch := func(data []byte, at time.Time) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, at, at); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}

	// The watcher takes the file as it finds it when it starts, which
	// this goroutine cannot see: change the file until a reload shows
	// that the watcher runs. Each version differs (a comment), so each
	// one it sees is a change.
	for i := 1; count() == 0; i++ {
		if i > 100 {
			t.Fatal("timed out waiting for the reload")
		}
		good := append(rules.CartOnlyYAML(45*time.Minute, 24*time.Hour), fmt.Sprintf("# version %d\n", i)...)
		touch(good, time.Now().Add(time.Duration(i)*time.Minute))
		time.Sleep(50 * time.Millisecond)
	}
	loaded := count()

	// The same content again, with a new time: not a change.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	touch(data, time.Now().Add(time.Hour))
	time.Sleep(100 * time.Millisecond) // ten polls
	bad := []byte("rules:\n  - id: x\n    version: 0\n    family: anomaly\n    channel: risk\n    on: [purchase]\n    when: event.amout > 1\n")
	touch(bad, time.Now().Add(2*time.Hour))
	waitFor("the rejection", func() bool { return logs.FilterMessageSnippet("rejected").Len() >= 2 })
	if n := count(); n != loaded {
		t.Fatalf("rule sets handed over after the first reload: %d, want none (the same content again, then a bad file)", n-loaded)
	}
	if n := rejected.Load(); n != 1 {
		t.Errorf("rejections reported: %d, want 1", n)
	}
	var msgs []string
	for _, e := range logs.FilterMessageSnippet("rejected").All() {
		msgs = append(msgs, e.ContextMap()["error"].(string))
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"rules.yaml:3:5: rule x: version must be >= 1", "rules.yaml:7:16: when: undeclared reference to 'event.amout'"} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}
}
