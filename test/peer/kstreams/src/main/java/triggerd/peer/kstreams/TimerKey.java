package triggerd.peer.kstreams;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.apache.kafka.common.utils.Bytes;

/**
 * The timer store's key: the due time (8 bytes, big-endian) then the
 * customer ID. RocksDB orders keys by their bytes, so the store iterates in
 * due-time order and the punctuator reads only the timers that are due.
 * Due times are positive epoch milliseconds, so the signed long's bytes
 * sort as the number does.
 */
final class TimerKey {
    private TimerKey() {
    }

    static Bytes of(long dueMs, String customer) {
        byte[] id = customer.getBytes(StandardCharsets.UTF_8);
        return Bytes.wrap(ByteBuffer.allocate(8 + id.length).putLong(dueMs).put(id).array());
    }

    static long due(Bytes key) {
        return ByteBuffer.wrap(key.get()).getLong();
    }

    static String customer(Bytes key) {
        byte[] k = key.get();
        return new String(k, 8, k.length - 8, StandardCharsets.UTF_8);
    }
}
