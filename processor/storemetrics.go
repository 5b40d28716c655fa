package processor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triggerd/triggerd/state"
)

// storeCollector exports the state store's Pebble figures at scrape time:
// what an SRE needs to see whether the store keeps up (compaction debt, L0
// sublevels, write stalls), what it costs (bytes written by the WAL, flushes
// and compactions: their ratio is the write amplification) and whether the
// block cache is big enough (hits and misses).
type storeCollector struct {
	store *state.Store
}

func storeDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("triggerd_store_"+name, help, labels, nil)
}

var (
	storeWALBytes       = storeDesc("wal_bytes_total", "Bytes written to Pebble's write-ahead log.")
	storeFlushedBytes   = storeDesc("flushed_bytes_total", "Bytes of sstables written by memtable flushes.")
	storeFlushes        = storeDesc("flushes_total", "Memtable flushes.")
	storeCompactedBytes = storeDesc("compacted_bytes_total", "Bytes of sstables written by compactions.")
	storeCompactions    = storeDesc("compactions_total", "Compactions completed.")
	storeCompactionSecs = storeDesc("compaction_seconds_total", "Time spent in compactions (summed over concurrent ones).")
	storeCompactionDebt = storeDesc("compaction_debt_bytes", "Estimated bytes compactions must rewrite to bring the LSM back into shape.")
	storeL0Sublevels    = storeDesc("l0_sublevels", "Sublevels in L0: Pebble slows and then stops writes as they grow.")
	storeReadAmp        = storeDesc("read_amplification", "Sstables and memtables a point read may have to consult.")
	storeLevelBytes     = storeDesc("level_bytes", "Bytes of sstables in the level.", "level")
	storeMemtableBytes  = storeDesc("memtable_bytes", "Bytes allocated to memtables, flushing ones included.")
	storeDiskBytes      = storeDesc("disk_bytes", "Bytes of the store on disk (sstables, WAL, blob files).")
	storeCacheBytes     = storeDesc("block_cache_bytes", "Bytes in the block cache.")
	storeCacheHits      = storeDesc("block_cache_hits_total", "Block cache hits.")
	storeCacheMisses    = storeDesc("block_cache_misses_total", "Block cache misses (block read from a file).")
	storeStalls         = storeDesc("write_stalls_total", "Write stalls (too many L0 files or memtables).")
	storeStallSecs      = storeDesc("write_stall_seconds_total", "Time writes were stalled, for stalls that ended.")
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{storeWALBytes, storeFlushedBytes, storeFlushes, storeCompactedBytes,
		storeCompactions, storeCompactionSecs, storeCompactionDebt, storeL0Sublevels, storeReadAmp, storeLevelBytes,
		storeMemtableBytes, storeDiskBytes, storeCacheBytes, storeCacheHits, storeCacheMisses, storeStalls, storeStallSecs} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	m, ok := c.store.Metrics()
	if !ok {
		return // closed: shutting down
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	total := m.Total()
	counter(storeWALBytes, float64(m.WAL.BytesWritten))
	counter(storeFlushedBytes, float64(total.TableBytesFlushed+total.BlobBytesFlushed))
	counter(storeFlushes, float64(m.Flush.Count))
	counter(storeCompactedBytes, float64(total.TableBytesCompacted+total.BlobBytesCompacted))
	counter(storeCompactions, float64(m.Compact.Count))
	counter(storeCompactionSecs, m.Compact.Duration.Seconds())
	gauge(storeCompactionDebt, float64(m.Compact.EstimatedDebt))
	gauge(storeL0Sublevels, float64(m.Levels[0].Sublevels))
	gauge(storeReadAmp, float64(m.ReadAmp()))
	for i := range m.Levels {
		gauge(storeLevelBytes, float64(m.Levels[i].TablesSize), strconv.Itoa(i))
	}
	gauge(storeMemtableBytes, float64(m.MemTable.Size))
	gauge(storeDiskBytes, float64(m.DiskSpaceUsage()))
	gauge(storeCacheBytes, float64(m.BlockCache.Size))
	counter(storeCacheHits, float64(m.BlockCache.Hits))
	counter(storeCacheMisses, float64(m.BlockCache.Misses))
	counter(storeStalls, float64(m.WriteStalls))
	counter(storeStallSecs, m.WriteStallTime.Seconds())
}
