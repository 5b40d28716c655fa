package rescale

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"
)

// A group's coordinator is briefly unavailable at times a rescale meets:
// on a cluster's first group request the broker creates __consumer_offsets
// and answers COORDINATOR_NOT_AVAILABLE meanwhile; after a broker restart
// the coordinator loads its partition (COORDINATOR_LOAD_IN_PROGRESS); when
// leadership moves the old one says NOT_COORDINATOR. kgo does not retry a
// coordinator lookup that failed (the request's shard fails), so kadm
// returns the error, where Kafka's Java admin client would retry. A rescale
// is a one-off command an operator waits for: it retries these errors for
// up to coordinatorPatience, saying so, rather than fail on a fresh cluster.

// coordinatorPatience bounds the wait for a group coordinator.
const coordinatorPatience = 2 * time.Minute

// retriableBackoff is the first pause between two tries; it doubles up to
// 2 s.
const retriableBackoff = 100 * time.Millisecond

// withCoordinator runs call until it succeeds, fails with an error other
// than a coordinator not ready, or coordinatorPatience has passed.
func (r *run) withCoordinator(ctx context.Context, what string, call func() error) error {
	deadline := time.Now().Add(coordinatorPatience)
	backoff := retriableBackoff
	for tries := 1; ; tries++ {
		err := call()
		if !coordinatorNotReady(err) {
			return err
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("%w (still failing after %d tries in %s)", err, tries, coordinatorPatience)
		}
		if tries == 1 {
			r.say("%s: the group coordinator is not ready (%v); retrying for up to %s", what, err, coordinatorPatience)
		}
		r.log.Debug("group coordinator not ready; retrying", zap.String("call", what), zap.Int("tries", tries), zap.Error(err))
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// coordinatorNotReady reports whether err is one of the answers of a group
// coordinator that is being created, loaded or moved.
func coordinatorNotReady(err error) bool {
	return errors.Is(err, kerr.CoordinatorNotAvailable) || errors.Is(err, kerr.CoordinatorLoadInProgress) ||
		errors.Is(err, kerr.NotCoordinator)
}

// describeGroups is DescribeGroups with a group's own error (a coordinator
// not ready) retried as a failed request is; a group the cluster does not
// know is described with no members.
func (r *run) describeGroups(ctx context.Context, groups []string) (kadm.DescribedGroups, error) {
	var described kadm.DescribedGroups
	err := r.withCoordinator(ctx, "describing the groups", func() error {
		var err error
		if described, err = r.adm.DescribeGroups(ctx, groups...); err != nil {
			return err
		}
		for _, g := range described {
			if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
				return fmt.Errorf("group %q: %w", g.Group, g.Err)
			}
		}
		return nil
	})
	return described, err
}
