package system

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/schemas"
)

// TestPoison mixes corrupt and invalid records into the workload (one of
// each kind every 2,000 events) while a processor is killed now and then.
// Each must reach the dead-letter topic once, with the reason the checker
// derives from how it broke the record, and every good event must still be
// processed: the triggers equal the model's.
func TestPoison(t *testing.T) { runPoison(t, newScenario(t, "poison")) }

// TestPoisonDefaultConfig is TestPoison in the default configuration
// (newDefaultConfigScenario).
func TestPoisonDefaultConfig(t *testing.T) {
	runPoison(t, newDefaultConfigScenario(t, "poison-default-config"))
}

func runPoison(t *testing.T, s *scenario) {
	n := 0
	want := map[string]string{} // poison value -> expected reason
	s.extra = func(ev *schemas.Event) []poison {
		n++
		if n%2000 != 0 {
			return nil
		}
		out := poisonFor(t, s, ev, n)
		for _, x := range out {
			want[string(x.value)] = x.reason
		}
		return out
	}
	ch := s.instance("i1")
	done := s.start()
	var pr produced
	kills := 0
	deadline := time.Now().Add(10 * time.Minute)
	for running := true; running; {
		if time.Now().After(deadline) {
			t.Fatalf("workload not written within 10 minutes (logs under %s)", s.dir)
		}
		ch.Start()
		waitReady(t, ch)
		select {
		case pr = <-done:
			running = false
		case <-time.After(4 * time.Second):
		}
		if ch.Running() {
			ch.Kill()
			kills++
		}
	}
	if pr.err != nil {
		t.Fatalf("writing the workload: %v", pr.err)
	}
	o := s.finish("i1", pr.model, s.mc)

	got := readDeadLetters(t, s, len(want))
	missing, wrong, duplicated := 0, 0, 0
	var examples []string
	for v, reason := range want {
		rs := got[v]
		switch {
		case len(rs) == 0:
			missing++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("missing %s %.40q", reason, v))
			}
		case rs[0] != reason:
			wrong++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("reason %s, want %s: %.40q", rs[0], reason, v))
			}
		}
		if len(rs) > 1 {
			duplicated += len(rs) - 1
		}
	}
	unexpected := 0
	for v, rs := range got {
		if _, ok := want[v]; !ok {
			unexpected += len(rs)
		}
	}
	t.Logf("%s: events=%d poison=%d dead_lettered=%d dlq_missing=%d dlq_wrong_reason=%d dlq_duplicated=%d dlq_unexpected=%d %s kills=%d",
		s.name, s.spec.events, len(want), len(got), missing, wrong, duplicated, unexpected, o, kills)
	if missing+wrong+duplicated+unexpected > 0 {
		t.Errorf("dead letters: %d missing, %d with the wrong reason, %d duplicated, %d unexpected; e.g. %v", missing, wrong, duplicated, unexpected, examples)
	}
	if len(want) < 100 {
		t.Errorf("only %d poison records written: too few to prove anything", len(want))
	}
	s.check(o)
}

// poisonFor breaks records in every way the processor must dead-letter,
// derived from a good event of the workload. Each value is unique (it
// carries n), so the checker can match dead letters to what it wrote.
func poisonFor(t *testing.T, s *scenario, ev *schemas.Event, n int) []poison {
	good, err := s.p.Encode(ev)
	if err != nil {
		t.Errorf("encode: %v", err)
		return nil
	}
	edit := func(f func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Errorf("the workload's JSON does not parse: %v", err)
		}
		m["event_id"] = fmt.Sprintf("poison-%d", n)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	key := string(ev.Customer)
	at := ev.Time
	return []poison{
		{ev.Source, key, []byte(fmt.Sprintf("{not json %d", n)), at, "invalid_json"},
		{ev.Source, key, edit(func(m map[string]any) { m["customer_id"] = "" }), at, "missing_customer_id"},
		{ev.Source, key, edit(func(m map[string]any) { delete(m, "event_id") }), at, "missing_event_id"},
		{ev.Source, key, edit(func(m map[string]any) { m["customer_id"] = key + "-other" }), at, "key_mismatch"},
		{ev.Source, key, edit(func(m map[string]any) { m["event_time"] = "1990-01-01T00:00:00Z" }), at, "absurd_timestamp"},
	}
}

// readDeadLetters reads the committed dead-letter topic: value -> reasons.
func readDeadLetters(t *testing.T, s *scenario, want int) map[string][]string {
	cl := s.c.Client(t, kgo.ConsumeTopics(s.cfg.Topics.DeadLetter), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string][]string{}
	total := 0
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		wait := 3 * time.Second
		if total < want {
			wait = time.Until(deadline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fetches := cl.PollFetches(ctx)
		cancel()
		recs := fetches.Records()
		for _, r := range recs {
			reason := ""
			for _, h := range r.Headers {
				if h.Key == "dlq_reason" {
					reason = string(h.Value)
				}
			}
			got[string(r.Value)] = append(got[string(r.Value)], reason)
			total++
		}
		if len(recs) == 0 && total >= want {
			break
		}
	}
	return got
}
