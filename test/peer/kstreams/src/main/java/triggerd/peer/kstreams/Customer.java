package triggerd.peer.kstreams;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/**
 * The customer store's value: the cart and counters the goka peer keeps in
 * its group table, and the due time of the customer's one pending cart
 * check (its entry in the timer store), -1 when there is none.
 */
final class Customer {
    static final long NO_TIMER = -1;

    long events;
    long purchases;
    long spendMinor;
    int cartItems;
    long cartValue;
    String cartChange = ""; // event ID of the last cart change; "" after a purchase
    long cartAtMs;
    long lastSeenMs;
    long timerDueMs = NO_TIMER;

    /** A fixed binary layout: the store's serde, hand-written as Kafka Streams users do for a hot value. */
    static Serde<Customer> serde() {
        Serializer<Customer> ser = (topic, c) -> {
            if (c == null) {
                return null;
            }
            byte[] change = c.cartChange.getBytes(StandardCharsets.UTF_8);
            ByteBuffer b = ByteBuffer.allocate(8 * 7 + 4 + 4 + change.length);
            b.putLong(c.events).putLong(c.purchases).putLong(c.spendMinor).putInt(c.cartItems).putLong(c.cartValue)
                    .putLong(c.cartAtMs).putLong(c.lastSeenMs).putLong(c.timerDueMs).putInt(change.length).put(change);
            return b.array();
        };
        Deserializer<Customer> de = (topic, data) -> {
            if (data == null) {
                return null;
            }
            ByteBuffer b = ByteBuffer.wrap(data);
            Customer c = new Customer();
            c.events = b.getLong();
            c.purchases = b.getLong();
            c.spendMinor = b.getLong();
            c.cartItems = b.getInt();
            c.cartValue = b.getLong();
            c.cartAtMs = b.getLong();
            c.lastSeenMs = b.getLong();
            c.timerDueMs = b.getLong();
            byte[] change = new byte[b.getInt()];
            b.get(change);
            c.cartChange = new String(change, StandardCharsets.UTF_8);
            return c;
        };
        return Serdes.serdeFrom(ser, de);
    }
}
