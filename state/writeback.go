package state

import (
	"github.com/triggerd/triggerd/schemas"
)

// The write-back of customer records (see the package doc): committed
// records kept in memory, encoded, and written to Pebble every
// Config.WriteBackCommits commits or past Config.WriteBackBytes.
//
// Locking: Partition.writeBackMu guards the write-back map (p.writeBack)
// against the one reader outside the partition's goroutine, Store.ReadCustomer.
// The partition's goroutine is the only writer, so it reads the map without
// the lock (loadCustomer) and changes it only with the lock held: every
// function named ...Locked needs p.writeBackMu held by its caller (Commit,
// ApplyChangelog's start of a restore, writeBackAll). The lock order is
// Store.mu, then Partition.writeBackMu (doc.go, Locks).

// WriteBackBytes returns the bytes of the committed customer records that
// are not in Pebble yet (see Config.WriteBackCommits): what a crash now
// would leave to the restore, and what the write-back holds in memory.
func (p *Partition) WriteBackBytes() int { return p.writeBackBytes }

// keepWriteBackLocked keeps v, the committed record of customer id, in the
// write-back, in a buffer of its own (v is the batch's).
func (p *Partition) keepWriteBackLocked(id schemas.CustomerID, v []byte) {
	old, ok := p.writeBack[id]
	if !ok {
		if n := len(p.writeBackFree); n > 0 {
			old = p.writeBackFree[n-1][:0]
			p.writeBackFree = p.writeBackFree[:n-1]
			p.writeBackFreeBytes -= cap(old)
		}
	}
	p.writeBackBytes += len(v) - len(old)
	p.writeBack[id] = append(old[:0], v...)
}

// dropWriteBackLocked forgets customer id's record in the write-back, if any.
func (p *Partition) dropWriteBackLocked(id schemas.CustomerID) {
	if v, ok := p.writeBack[id]; ok {
		p.writeBackBytes -= len(v)
		delete(p.writeBack, id)
		p.freeWriteBackLocked(v)
	}
}

// writeBackBufCap is the largest buffer kept for reuse: a hot customer's
// buffer is not kept for a cold one.
const writeBackBufCap = 4 << 10

// freeWriteBackLocked keeps v for reuse while the kept buffers stay within the
// write-back's own byte bound, and leaves it to the GC otherwise.
func (p *Partition) freeWriteBackLocked(v []byte) {
	if cap(v) <= writeBackBufCap && p.writeBackFreeBytes+cap(v) <= p.maxWriteBackBytes {
		p.writeBackFree = append(p.writeBackFree, v)
		p.writeBackFreeBytes += cap(v)
	}
}

// flushWriteBackLocked adds every record of the write-back to the batch and
// empties it. The records are committed ones: they may go into any batch.
func (p *Partition) flushWriteBackLocked() error {
	for id, v := range p.writeBack {
		p.key = appendCustomerKey(p.key[:0], p.num, id)
		// Set copies the value into the batch: the buffer is free after.
		if err := p.batch.Set(p.key, v, nil); err != nil {
			return p.writeErr(err)
		}
		delete(p.writeBack, id)
		p.freeWriteBackLocked(v)
	}
	p.writeBackBytes = 0
	return nil
}

// writeBackAll writes the write-back to Pebble with the offsets of the last
// commit, between batches: Store.Close calls it, so that a clean stop leaves
// Pebble up to date and the next start restores nothing.
func (p *Partition) writeBackAll() error {
	if p.err != nil || len(p.writeBack) == 0 || p.restoring || p.sealed ||
		len(p.custs) > 0 || len(p.timers) > 0 || len(p.held) > 0 || !p.batch.Empty() {
		return nil // nothing to do, or a batch is open: the restore replays
	}
	p.writeBackMu.Lock()
	defer p.writeBackMu.Unlock()
	if err := p.flushWriteBackLocked(); err != nil {
		return err
	}
	// Between batches, the working offsets are the committed ones.
	if err := p.writeMeta(true, p.committedChangelog); err != nil {
		return err
	}
	if err := p.batch.Commit(p.writeOpts); err != nil {
		return p.writeErr(err)
	}
	p.batch.Reset()
	p.flushedChangelog = p.committedChangelog
	p.writeBackSince = 0
	return nil
}
