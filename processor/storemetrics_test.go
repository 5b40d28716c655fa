package processor

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
)

// The store's series follow what the store did (a committed batch shows in
// the WAL bytes), every level has its series, and a closed store exports
// nothing (a scrape during shutdown must not panic).
func TestStoreCollector(t *testing.T) {
	cfg := state.DefaultConfig()
	cfg.Dir, cfg.FS = "db", vfs.NewMem()
	cfg.WriteBackCommits = 1 // the commit below writes to Pebble at once
	store, err := state.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(storeCollector{store})
	value := func(name string) float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == name {
				var v float64
				for _, m := range f.GetMetric() {
					v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
				return v
			}
		}
		t.Fatalf("no series %s", name)
		return 0
	}
	wal0 := value("triggerd_store_wal_bytes_total")
	p := store.Partition(0)
	for i := range 100 {
		c, err := p.Customer(schemas.CustomerID(fmt.Sprintf("c%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		c.Events = int64(i)
	}
	if err := p.Commit(-1); err != nil {
		t.Fatal(err)
	}
	if got := value("triggerd_store_wal_bytes_total"); got <= wal0 {
		t.Errorf("WAL bytes %v after a commit, %v before", got, wal0)
	}
	if got := value("triggerd_store_disk_bytes"); got <= 0 {
		t.Errorf("disk bytes = %v", got)
	}
	if n := testutil.CollectAndCount(storeCollector{store}, "triggerd_store_level_bytes"); n != 7 {
		t.Errorf("%d level_bytes series, want one per level (7)", n)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(storeCollector{store}); n != 0 {
		t.Errorf("a closed store exported %d series", n)
	}
}
