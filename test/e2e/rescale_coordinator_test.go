package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/triggerd/triggerd/processor/rescale"
	"github.com/triggerd/triggerd/test/harness"
)

// TestRescaleWaitsForCoordinator: a rescale whose group coordinator is not
// ready yet (as on a cluster's first group request, while the broker creates
// __consumer_offsets) waits for it and completes, rather than fail. The
// coordinator lookups of groups are answered COORDINATOR_NOT_AVAILABLE by the
// broker (kfake's request control: the real broker's answer on the wire) for
// a while; kgo gives such an answer back to the caller without a retry.
func TestRescaleWaitsForCoordinator(t *testing.T) {
	kf, c := harness.NewKfake(t)
	cfg := rescaleConfig(c.Topics(t, 2))
	r, _ := runPhase(t, c, cfg, 2, rescaleWorkload(7)[0], 0, false)
	r.stop(t)

	const refusals = 8
	var refused atomic.Int32
	kf.ControlKey(int16(kmsg.FindCoordinator), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		fc := req.(*kmsg.FindCoordinatorRequest)
		if fc.CoordinatorType != 0 || refused.Load() >= refusals {
			return nil, nil, false // transactions' coordinators, and groups' once the refusals are spent
		}
		refused.Add(1)
		resp := fc.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.Version = fc.Version
		resp.ErrorCode, resp.NodeID = kerr.CoordinatorNotAvailable.Code, -1
		keys := fc.CoordinatorKeys
		if fc.Version < 4 {
			keys = []string{fc.CoordinatorKey}
		}
		for _, k := range keys {
			resp.Coordinators = append(resp.Coordinators, kmsg.FindCoordinatorResponseCoordinator{
				Key: k, NodeID: -1, ErrorCode: kerr.CoordinatorNotAvailable.Code,
			})
		}
		return resp, nil, true
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress lineBuffer
	res, err := rescale.Run(ctx, cfg, rescale.Options{To: 4, Progress: &progress})
	for errors.As(err, new(*rescale.RefusedError)) && ctx.Err() == nil {
		// The stopped static member leaves when its session times out.
		time.Sleep(500 * time.Millisecond)
		res, err = rescale.Run(ctx, cfg, rescale.Options{To: 4, Progress: &progress})
	}
	if err != nil {
		t.Fatalf("rescale with the group coordinator not ready at first: %v\nprogress:\n%s", err, progress.String())
	}
	if n := refused.Load(); n != refusals {
		t.Fatalf("the broker refused %d coordinator lookups, want %d: the rescale did not meet the fault", n, refusals)
	}
	if res.Customers == 0 || res.From != 2 || res.To != 4 {
		t.Fatalf("rescale result %+v: want customers moved from 2 to 4 partitions", res)
	}
	if !progress.contains("the group coordinator is not ready") {
		t.Fatalf("the rescale did not say it waited for the coordinator; progress:\n%s", progress.String())
	}
	t.Logf("%s after %d refused coordinator lookups", res.Summary(), refusals)
}

// lineBuffer collects the rescale's progress lines, written by more than
// one goroutine.
type lineBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

func (b *lineBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }
