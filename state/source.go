package state

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// metaSource is the store-wide key that names the changelog topic the
// store's partitions were restored from and committed to.
const metaSource = "source"

// UseSource makes changelog the store's source. A store that held the
// state of another changelog (a rescale wrote a new one, with other
// partitions: see processor/rescale) drops every partition first: its
// offsets are offsets of the other topic, and a restore from them would
// mix the two. It reports whether it dropped anything. A store without a
// source (new, or of a release before this key) takes changelog as its
// source and keeps its state. Call it before any Partition handle is used.
func (s *Store) UseSource(changelog string) (dropped bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false, errClosed
	}
	key := appendMetaKey(nil, storePart, metaSource)
	v, closer, err := s.db.Get(key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return false, fmt.Errorf("state: read the changelog source: %w", err)
	default:
		was := string(v)
		closer.Close()
		if was == changelog {
			return false, nil
		}
		s.mu.drops++
		for p, h := range s.mu.parts {
			_ = h.close(fmt.Errorf("state: partition %d was dropped: the changelog is now %q", p, changelog))
			delete(s.mu.parts, p)
		}
		start, _ := partitionBounds(0)
		if err := s.db.DeleteRange(start, appendPartition(nil, storePart), pebble.Sync); err != nil {
			return false, fmt.Errorf("state: drop the state of changelog %q: %w", was, err)
		}
		dropped = true
	}
	if err := s.db.Set(key, []byte(changelog), pebble.Sync); err != nil {
		return false, fmt.Errorf("state: write the changelog source: %w", err)
	}
	return dropped, nil
}
