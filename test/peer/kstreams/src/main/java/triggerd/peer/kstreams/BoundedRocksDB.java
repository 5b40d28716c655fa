package triggerd.peer.kstreams;

import java.util.Map;

import org.apache.kafka.streams.state.RocksDBConfigSetter;
import org.rocksdb.BlockBasedTableConfig;
import org.rocksdb.Cache;
import org.rocksdb.LRUCache;
import org.rocksdb.Options;
import org.rocksdb.WriteBufferManager;

/**
 * RocksDB settings for every store instance (two per task, a task per
 * partition: 24 RocksDB instances on 12 partitions). Kafka Streams' default
 * gives each instance its own 50 MB block cache and up to three 16 MB
 * memtables, which on 24 instances is more memory than the machine gives a
 * process; this is the bounded-memory configuration of the Kafka Streams
 * memory-management guide: one LRU cache shared by all instances, the
 * memtables charged to it through a WriteBufferManager, index and filter
 * blocks cached in it with high priority. The rest (universal compaction,
 * no WAL: the changelog topic is the recovery log) stays Kafka Streams'
 * default.
 */
public final class BoundedRocksDB implements RocksDBConfigSetter {
    /** Off-heap memory for all stores: block cache and memtables together. */
    static final long TOTAL_BYTES = 256L << 20;
    /** Of which memtables at most. */
    static final long MEMTABLE_BYTES = 128L << 20;
    /** Memtable size per store; writes are batched this much before a flush to L0. */
    static final long WRITE_BUFFER_BYTES = 16L << 20;

    private static final Cache CACHE = new LRUCache(TOTAL_BYTES, -1, false, 0.1);
    private static final WriteBufferManager WRITE_BUFFERS = new WriteBufferManager(MEMTABLE_BYTES, CACHE);

    @Override
    public void setConfig(String storeName, Options options, Map<String, Object> configs) {
        BlockBasedTableConfig table = (BlockBasedTableConfig) options.tableFormatConfig();
        table.setBlockCache(CACHE);
        table.setCacheIndexAndFilterBlocks(true);
        table.setCacheIndexAndFilterBlocksWithHighPriority(true);
        table.setPinTopLevelIndexAndFilter(true);
        options.setWriteBufferManager(WRITE_BUFFERS);
        options.setWriteBufferSize(WRITE_BUFFER_BYTES);
        options.setMaxWriteBufferNumber(2);
        options.setTableFormatConfig(table);
    }

    @Override
    public void close(String storeName, Options options) {
        // CACHE and WRITE_BUFFERS are shared by every store: never closed here.
    }
}
