package system

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
	"github.com/triggerd/triggerd/test/harness"
)

// checkState compares every customer's final state with the model, twice:
// as the changelog topic holds it (replayed from the start into an empty
// store: the durable copy a new instance would restore) and as the last
// instance's own Pebble store holds it. It returns the number of customers
// that differ, with a few examples.
func (s *scenario) checkState(main string, final map[schemas.CustomerID]modelCustomer) (bad int, examples []string) {
	t := s.t
	replayed := s.replayChangelog()
	defer replayed.Close()
	local, err := state.Open(stateConfig(filepath.Join(s.dir, main, "state")), zap.NewNop())
	if err != nil {
		t.Fatalf("opening %s's state: %v", main, err)
	}
	defer local.Close()
	for _, st := range []struct {
		name  string
		store *state.Store
	}{{"changelog", replayed}, {"pebble", local}} {
		for id, want := range final {
			sp := st.store.Partition(harness.PartitionOf(string(id), s.parts))
			c, err := sp.Customer(id)
			if err != nil {
				t.Fatalf("%s: customer %s: %v", st.name, id, err)
			}
			if diff := customerDiff(c, want); diff != "" {
				bad++
				if len(examples) < 5 {
					examples = append(examples, fmt.Sprintf("%s: %s: %s", st.name, id, diff))
				}
			}
			sp.Abort() // only read
		}
	}
	return bad, examples
}

func stateConfig(dir string) state.Config {
	sc := state.DefaultConfig()
	sc.Dir = dir
	sc.CacheBytes = 64 << 20
	return sc
}

// replayChangelog reads the changelog topic (read_committed) from the start
// to its end into a fresh store, the way a restore does.
func (s *scenario) replayChangelog() *state.Store {
	t := s.t
	store, err := state.Open(stateConfig(filepath.Join(t.TempDir(), "replayed")), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(s.c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, s.cfg.Topics.Changelog)
	if err != nil {
		t.Fatalf("changelog end offsets: %v", err)
	}
	cl := s.c.Client(t, kgo.ConsumeTopics(s.cfg.Topics.Changelog), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("changelog not read to its end within 2 minutes: %v left", left)
		}
		for _, r := range fetches.Records() {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			if r.Attrs.IsControl() {
				continue
			}
			if err := store.Partition(r.Partition).ApplyChangelog(r.Key, r.Value, r.Offset); err != nil {
				t.Fatalf("changelog partition %d offset %d: %v", r.Partition, r.Offset, err)
			}
		}
	}
	for p := int32(0); p < s.parts; p++ {
		if err := store.Partition(p).FlushRestore(); err != nil {
			t.Fatal(err)
		}
	}
	return store
}

// customerDiff says how c differs from the model's customer, or "".
func customerDiff(c *schemas.Customer, want modelCustomer) string {
	if c.Events != want.events {
		return fmt.Sprintf("events %d, model %d", c.Events, want.events)
	}
	if c.Purchases != want.purchases {
		return fmt.Sprintf("purchases %d, model %d", c.Purchases, want.purchases)
	}
	got := map[string]int32{}
	for _, it := range c.Cart.Items {
		got[it.ProductID] += it.Quantity
	}
	if len(got) != len(want.cart) {
		return fmt.Sprintf("cart %v, model %v", got, want.cart)
	}
	for p, q := range want.cart {
		if got[p] != q {
			return fmt.Sprintf("cart %v, model %v", got, want.cart)
		}
	}
	return ""
}
