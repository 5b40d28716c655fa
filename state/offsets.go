package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// The partition's metadata: the offsets record (input offsets, event-time
// progress, the changelog offset), the pending-timer count and the
// held-record count.

// Offsets are the positions a partition's state reflects.
type Offsets struct {
	// Inputs maps an input topic to the offset to resume from (the next
	// record to read) in this partition.
	Inputs map[string]int64
	// Changelog is the offset of the last changelog record the state
	// reflects, or -1 when none.
	Changelog int64
	// Progress maps an input topic to its event-time progress: the
	// highest event time admitted from it (unix milliseconds), as last set
	// with SetProgress. A topic without one is absent.
	Progress map[string]int64
	// Fired is the event time (unix milliseconds) up to which every timer
	// has fired, as last set with SetFired; HasFired is false when none was.
	Fired    int64
	HasFired bool
	// Persisted is the offset up to which Pebble holds the state, or -1:
	// a restore replays the changelog from the next one. It is behind
	// Changelog while customer records of the last commits are in
	// write-back (see Config.WriteBackCommits); the restore then also
	// applies those commits' records again, which is harmless.
	Persisted int64
}

// load reads the committed offsets, timer count and held-record count.
func (p *Partition) load() error {
	p.committedChangelog = -1
	v, closer, err := p.db.Get(appendMetaKey(p.key[:0], p.num, metaOffsets))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("state: partition %d: read offsets: %w", p.num, err)
	default:
		p.committedChangelog, err = decodeOffsets(v, p.committedInputs)
		closer.Close()
		if err != nil {
			return fmt.Errorf("state: partition %d: %w", p.num, err)
		}
	}
	p.flushedChangelog = p.committedChangelog
	if p.committedPending, err = p.loadCount(metaTimers, "timer count"); err != nil {
		return err
	}
	if p.committedHeld, err = p.loadCount(metaHeld, "held-record count"); err != nil {
		return err
	}
	if err := p.buildTimerFilter(); err != nil {
		return err
	}
	p.reset()
	return nil
}

// loadCount reads a count stored under the metadata key name: 8 bytes
// big-endian, absent = 0.
func (p *Partition) loadCount(name, what string) (int64, error) {
	v, closer, err := p.db.Get(appendMetaKey(p.key[:0], p.num, name))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("state: partition %d: read %s: %w", p.num, what, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("state: partition %d: %s is %d bytes, want 8", p.num, what, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// SetOffset records the input offset to resume from (the next record) for
// topic; it is committed with the batch and travels in the changelog.
// It panics after Changes (the changelog has already been produced) and for
// a name starting with '@', which no Kafka topic has (see progressEntry).
func (p *Partition) SetOffset(topic string, next int64) {
	if strings.HasPrefix(topic, reservedPrefix) {
		panic(fmt.Sprintf("state: partition %d: SetOffset of %q: not a topic name", p.num, topic))
	}
	p.setEntry("SetOffset", topic, next)
}

// SetProgress records the event-time progress of input topic (the highest
// event time admitted from it, unix milliseconds), committed with the batch
// like SetOffset, so that a restart resumes with the watermark it had.
func (p *Partition) SetProgress(topic string, ms int64) {
	p.setEntry("SetProgress", progressEntry(topic), ms)
}

// SetFired records the event time (unix milliseconds) up to which every
// timer has fired, committed with the batch, so that a restart still tells
// a late record.
func (p *Partition) SetFired(ms int64) {
	p.setEntry("SetFired", firedEntry, ms)
}

func (p *Partition) setEntry(op, name string, v int64) {
	if p.sealed {
		panic(fmt.Sprintf("state: partition %d: %s after Changes: the batch is sealed until Commit or Abort", p.num, op))
	}
	p.inputs[name] = v
	p.offsetsDirty = true
}

// The offsets record keeps event-time progress among the input offsets,
// under names no Kafka topic can have (topic names are letters, digits, '.',
// '_' and '-'): "@progress/<topic>" for an input's progress and "@fired" for
// the fired watermark. This is how the release that introduced them wrote
// them (the processor then set them with SetOffset), so a store or a
// changelog of that release restores with its progress, and the bytes are
// the same in both directions. Only this file knows the names.
const (
	reservedPrefix = "@"
	progressPrefix = "@progress/"
	firedEntry     = "@fired"
)

func progressEntry(topic string) string { return progressPrefix + topic }

// Offsets returns the committed offsets (copies, owned by the caller).
func (p *Partition) Offsets() (Offsets, error) {
	if p.err != nil {
		return Offsets{}, p.err
	}
	o := Offsets{Inputs: make(map[string]int64, len(p.committedInputs)), Progress: make(map[string]int64),
		Changelog: p.committedChangelog, Persisted: p.flushedChangelog}
	for name, v := range p.committedInputs {
		switch {
		case name == firedEntry:
			o.Fired, o.HasFired = v, true
		case strings.HasPrefix(name, progressPrefix):
			o.Progress[name[len(progressPrefix):]] = v
		case strings.HasPrefix(name, reservedPrefix):
			// A reserved name of a later release: kept (it is written
			// back with the offsets), not shown.
		default:
			o.Inputs[name] = v
		}
	}
	return o, nil
}

// sortedTopics returns the topics of p.inputs in order, in a reused slice.
func (p *Partition) sortedTopics() []string {
	p.topics = p.topics[:0]
	for t := range p.inputs {
		p.topics = append(p.topics, t)
	}
	slices.Sort(p.topics)
	return p.topics
}

// writeMeta adds the offsets, the timer count and the held-record count (each
// if changed) to the batch.
func (p *Partition) writeMeta(offsets bool, changelog int64) error {
	if offsets {
		start := len(p.arena)
		p.arena = appendOffsets(p.arena, p.sortedTopics(), p.inputs, changelog)
		p.key = appendMetaKey(p.key[:0], p.num, metaOffsets)
		if err := p.batch.Set(p.key, p.arena[start:], nil); err != nil {
			return p.writeErr(err)
		}
	}
	if p.pending != p.committedPending {
		if err := p.writeCount(metaTimers, p.pending); err != nil {
			return err
		}
	}
	if p.heldCount != p.committedHeld {
		if err := p.writeCount(metaHeld, p.heldCount); err != nil {
			return err
		}
	}
	return nil
}

// writeCount adds the count n under the metadata key name to the batch.
func (p *Partition) writeCount(name string, n int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	p.key = appendMetaKey(p.key[:0], p.num, name)
	if err := p.batch.Set(p.key, b[:], nil); err != nil {
		return p.writeErr(err)
	}
	return nil
}
