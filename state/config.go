package state

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config configures a Store.
type Config struct {
	// Dir is the state directory. It holds one Pebble store for all the
	// partitions this process owns.
	Dir string
	// FS is the file system; nil means vfs.Default. Tests pass vfs.NewMem()
	// or vfs.NewCrashableMem().
	FS vfs.FS
	// CacheBytes is the size of Pebble's block cache; 0 means 256 MiB.
	CacheBytes int64
	// MemTableBytes is the size of one Pebble memtable; 0 means 64 MiB. A
	// large memtable keeps the recent writes of hot customers in memory and
	// makes flushes rarer.
	MemTableBytes int64
	// CachedCustomers is how many decoded customer records each partition
	// keeps between batches (the most recently committed), so that hot
	// customers are not read and decoded again every batch; 0 means 1024,
	// a negative value turns the cache off. Each costs its record's size
	// in Go heap. The partition also keeps the committed due times of four
	// times as many timers (about 100 bytes each), so that scheduling and
	// cancelling a hot customer's timers skips the timer index read.
	CachedCustomers int
	// WriteBackCommits is how many commits a customer record may stay out
	// of Pebble (write-back): a commit keeps its customer records in
	// memory, encoded, and every WriteBackCommits commits (or sooner, at
	// WriteBackBytes) writes them all in one go, so a hot customer updated
	// in every commit is written to Pebble once instead of that many times.
	// The changelog gets every commit's records as before: after a crash
	// the restore replays it from the last write-back, not the last commit
	// (see Partition.Offsets). 0 means 16; 1 writes every commit's records
	// (write-through).
	WriteBackCommits int
	// WriteBackBytes bounds the encoded customer records a partition keeps
	// out of Pebble; 0 means 2 MiB.
	WriteBackBytes int
	// SyncWrites fsyncs every batch commit. Off by default: the changelog
	// topic is the durable copy, and a batch lost in a crash is replayed
	// from it. On, a crash loses no committed batch (slower commits).
	SyncWrites bool

	// columnarBlocks writes new tables with Pebble's columnar blocks, as
	// earlier releases did (see Open); tests set it to make such a store.
	columnarBlocks bool
}

const (
	defaultCacheBytes       = 256 << 20
	defaultMemTableBytes    = 64 << 20
	defaultCachedCustomers  = 1024
	defaultWriteBackCommits = 16
	defaultWriteBackBytes   = 2 << 20
	maxMemTableBytes        = 4<<30 - 1 // Pebble's limit
)

// DefaultConfig returns the defaults. Dir is relative to the working
// directory; deployments set it.
func DefaultConfig() Config {
	return Config{
		Dir:           "state",
		CacheBytes:    defaultCacheBytes,
		MemTableBytes: defaultMemTableBytes,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("state: Dir is empty"))
	}
	if c.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("state: CacheBytes is %d: want >= 0 (0 = default)", c.CacheBytes))
	}
	if c.WriteBackCommits < 0 {
		errs = append(errs, fmt.Errorf("state: WriteBackCommits is %d: want >= 0 (0 = default, 1 = write-through)", c.WriteBackCommits))
	}
	if c.WriteBackBytes < 0 {
		errs = append(errs, fmt.Errorf("state: WriteBackBytes is %d: want >= 0 (0 = default)", c.WriteBackBytes))
	}
	if c.MemTableBytes < 0 || c.MemTableBytes > maxMemTableBytes {
		errs = append(errs, fmt.Errorf("state: MemTableBytes is %d: want 0 (default) to %d", c.MemTableBytes, int64(maxMemTableBytes)))
	}
	return errors.Join(errs...)
}
