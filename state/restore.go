package state

import (
	"fmt"

	"github.com/triggerd/triggerd/schemas"
)

// ApplyChangelog applies one changelog record (offset is its Kafka offset)
// to a restore batch. Records are applied in offset order; applying one
// twice is harmless. The state is rebuilt exactly: a customer record is
// stored as is; a timer record rebuilds both timer indexes (removing a moved
// timer's old time-ordered entry) and the pending-timer count; a held record
// is stored or deleted and the held-record count follows; the offsets record
// restores the input offsets. A nil or empty value is a tombstone.
//
// A restore runs between batches: ApplyChangelog fails while a batch has
// uncommitted changes, and Customer, Schedule and the other batch writes fail
// until FlushRestore. Timer and held records go through the same in-memory
// overlays as a batch (a timer moved twice between flushes is written once);
// customer records go straight into the Pebble batch. An invalid record is an
// error (the processor stops: the changelog is the state's only copy).
func (p *Partition) ApplyChangelog(key, value []byte, offset int64) error {
	if p.err != nil {
		return p.err
	}
	if !p.restoring {
		if p.sealed || len(p.custs) > 0 || len(p.timers) > 0 || len(p.held) > 0 || p.offsetsDirty || !p.batch.Empty() {
			return fmt.Errorf("state: partition %d: ApplyChangelog with an open batch: Commit or Abort it first", p.num)
		}
		p.restoring = true
		// The changelog may replace any record.
		p.custCache.clear(p.freeCustomer)
		// The write-back's records are all after the offset the restore
		// starts from (Offsets), so the restore applies them again, or
		// newer ones.
		p.writeBackMu.Lock()
		for id := range p.writeBack {
			p.dropWriteBackLocked(id)
		}
		p.writeBackSince = 0
		p.writeBackMu.Unlock()
		// (The timer cache stays: restored timers go through the
		// overlay, and FlushRestore updates the cache like Commit.)
		// Restored timers may be due at any time.
		p.floor, p.committedFloor = 0, 0
	}
	if len(key) == 0 {
		return fmt.Errorf("state: partition %d: changelog offset %d: empty key", p.num, offset)
	}
	var err error
	switch key[0] {
	case kindCustomer:
		err = p.applyCustomer(key, value)
	case kindReverse:
		err = p.applyTimer(key, value)
	case kindHeld:
		err = p.applyHeld(key, value)
	case kindMeta:
		if string(key[1:]) != metaOffsets {
			err = fmt.Errorf("unknown metadata key %q", key[1:])
			break
		}
		if len(value) == 0 {
			clear(p.inputs)
		} else if _, err = decodeOffsets(value, p.inputs); err != nil {
			break
		}
		p.offsetsDirty = true
	default:
		err = fmt.Errorf("unknown key kind %q", key[0])
	}
	if err != nil {
		if p.err != nil {
			return err // a write error, already wrapped and sticky
		}
		return fmt.Errorf("state: partition %d: changelog offset %d: %w", p.num, offset, err)
	}
	if offset > p.restoreOffset {
		p.restoreOffset = offset
	}
	return nil
}

func (p *Partition) applyCustomer(key, value []byte) error {
	if len(key) < 2 {
		return fmt.Errorf("empty customer ID")
	}
	p.key = appendPartition(p.key[:0], p.num)
	p.key = append(p.key, key...)
	if len(value) == 0 {
		if err := p.batch.Delete(p.key, nil); err != nil {
			return p.writeErr(err)
		}
		return nil
	}
	// Decode to validate: a record we cannot read must stop the restore
	// here, not fail a batch later.
	if err := decodeCustomerWith(value, &p.scratch, &p.names); err != nil {
		return err
	}
	if err := p.batch.Set(p.key, value, nil); err != nil {
		return p.writeErr(err)
	}
	return nil
}

func (p *Partition) applyTimer(key, value []byte) error {
	c, id, err := parseTimerRef(key[1:])
	if err != nil {
		return err
	}
	p.key2 = appendPartition(p.key2[:0], p.num)
	p.key2 = append(p.key2, key...)
	e, err := p.timer(p.key2)
	if err != nil {
		return err
	}
	if len(value) == 0 {
		// Deleted for real, not unset as a batch does (see
		// writeTimers): a restore writes each key once, so the memtable
		// cost that unsetting avoids does not arise, and an erased
		// customer's reverse keys must not stay behind with its ID.
		p.unset(e)
		e.erase = true
		return nil
	}
	var t schemas.Timer
	ms, err := decodeTimer(value, &t)
	if err != nil {
		return err
	}
	if t.Customer != c || t.ID != id {
		return fmt.Errorf("timer record %q/%q under key %q/%q", t.Customer, t.ID, c, id)
	}
	// Stored as received, so that Pebble holds the changelog's bytes.
	start := len(p.arena)
	p.arena = append(p.arena, value...)
	p.set(e, encodeDue(ms), span{start, len(p.arena)})
	return nil
}

// FlushRestore commits the restore batch (NoSync, like Commit) with the
// restored input offsets, the offset of the last record applied as the
// changelog offset, the timer count and the held-record count. Call it every few thousand records
// and at the end of the restore; it is a no-op when nothing was applied.
func (p *Partition) FlushRestore() error {
	if p.err != nil {
		return p.err
	}
	if !p.restoring {
		return nil
	}
	if err := p.writeTimers(); err != nil {
		return err
	}
	if err := p.writeHeld(); err != nil {
		return err
	}
	changelog := p.committedChangelog
	if p.restoreOffset >= 0 {
		changelog = p.restoreOffset
	}
	if err := p.writeMeta(p.offsetsDirty || changelog != p.committedChangelog, changelog); err != nil {
		return err
	}
	if !p.batch.Empty() {
		if err := p.batch.Commit(p.writeOpts); err != nil {
			return p.writeErr(err)
		}
	}
	p.flushedChangelog = changelog
	p.committed(changelog)
	return nil
}
