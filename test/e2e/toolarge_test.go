package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRecordTooLarge: the changelog topic takes records of at most 2,000
// bytes and a customer's state outgrows that. The broker will refuse the
// record every time, so retrying the cycle would loop forever: the
// processor must stop, saying which topic refused a record and why.
func TestRecordTooLarge(t *testing.T) {
	c := harness.NewCluster(t)
	cfg := c.Topics(t, 1)
	small := "2000"
	createChangelog(t, c, cfg, map[string]*string{"max.message.bytes": &small})
	r := start(t, cfg, memStore(t))

	// The limit is on the compressed batch, so the cart's product IDs are
	// hashes: 100 of them stay over 2,000 bytes however the producer
	// compresses or batches them (readable IDs compressed under the limit
	// when a cycle's records went out one batch each).
	t0 := time.Now().UTC().Add(-time.Hour)
	var evs []schemas.Event
	for i := range 100 {
		sum := sha256.Sum256(fmt.Appendf(nil, "product-%d", i))
		evs = append(evs, click(fmt.Sprintf("add-%d", i), "hoarder", schemas.AddToCart, t0, hex.EncodeToString(sum[:])))
	}
	harness.NewProducer(t, c, cfg, nil).Send(1, evs...)
	err := r.stopped(t, 60*time.Second)
	if !strings.Contains(err.Error(), "refuses a record for good") || !strings.Contains(err.Error(), cfg.Topics.Changelog) {
		t.Fatalf("Run() = %v, want the refused changelog record named", err)
	}
	t.Logf("stopped: %v", err)
}
