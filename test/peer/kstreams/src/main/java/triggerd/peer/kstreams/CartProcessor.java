package triggerd.peer.kstreams;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The benchmark's cart workload, as the goka peer computes it: per customer
 * the event and purchase counters, the spend, the cart (items, value, the
 * event ID of its last change); an add_to_cart, or a remove_from_cart that
 * leaves items, schedules a check stage1 after the change's event time; a
 * purchase empties the cart. A check still standing when it falls due (the
 * cart unchanged, not bought, not empty) emits one cart_abandoned trigger.
 *
 * Kafka Streams has no timers: each customer's one pending check is an
 * entry in the timer store (key: due time, customer; see TimerKey), which a
 * stream-time punctuator scans from its start up to the task's stream time.
 * The customer's record holds the entry's due time, so that a new cart
 * change replaces the entry and a purchase deletes it. Due times are event
 * times: the stream time (the highest event time the task has seen) is the
 * goka delayer's watermark, per task instead of per process. A check that
 * fell due before an event of its customer is fired before the event is
 * applied, so the punctuator's interval never lets a later event cancel
 * it.
 */
final class CartProcessor implements Processor<String, Event, String, byte[]> {
    static final String CUSTOMERS = "customers";
    static final String TIMERS = "cart-timers";

    private final long stage1Ms;
    private final Duration punctuateEvery;
    private ProcessorContext<String, byte[]> ctx;
    private KeyValueStore<String, Customer> customers;
    private KeyValueStore<Bytes, byte[]> timers;

    CartProcessor(long stage1Ms, Duration punctuateEvery) {
        this.stage1Ms = stage1Ms;
        this.punctuateEvery = punctuateEvery;
    }

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
        ctx = context;
        customers = context.getStateStore(CUSTOMERS);
        timers = context.getStateStore(TIMERS);
        context.schedule(punctuateEvery, PunctuationType.STREAM_TIME, this::fireDue);
    }

    @Override
    public void process(Record<String, Event> r) {
        String key = r.key();
        Event ev = r.value();
        if (key == null || ev == null) {
            return;
        }
        Customer c = customers.get(key);
        if (c == null) {
            c = new Customer();
        }
        if (c.timerDueMs != Customer.NO_TIMER && c.timerDueMs < ev.timeMs) {
            fire(key, c);
        }
        c.events++;
        c.lastSeenMs = Math.max(c.lastSeenMs, ev.timeMs);
        switch (ev.type) {
            case "add_to_cart" -> {
                c.cartItems += ev.quantity;
                c.cartValue += (long) ev.quantity * ev.priceMinor;
                c.cartChange = ev.id;
                c.cartAtMs = ev.timeMs;
                schedule(key, c, ev.timeMs + stage1Ms);
            }
            case "remove_from_cart" -> {
                c.cartItems = Math.max(c.cartItems - 1, 0);
                if (c.cartItems == 0) {
                    c.cartValue = 0;
                }
                c.cartChange = ev.id;
                c.cartAtMs = ev.timeMs;
                if (c.cartItems > 0) {
                    schedule(key, c, ev.timeMs + stage1Ms);
                } else {
                    cancel(key, c);
                }
            }
            case "purchase" -> {
                c.purchases++;
                c.spendMinor += ev.amountMinor;
                c.cartItems = 0;
                c.cartValue = 0;
                c.cartChange = "";
                cancel(key, c);
            }
            default -> {
            }
        }
        customers.put(key, c);
    }

    private void schedule(String key, Customer c, long dueMs) {
        cancel(key, c);
        c.timerDueMs = dueMs;
        timers.put(TimerKey.of(dueMs, key), new byte[0]);
    }

    private void cancel(String key, Customer c) {
        if (c.timerDueMs != Customer.NO_TIMER) {
            timers.delete(TimerKey.of(c.timerDueMs, key));
            c.timerDueMs = Customer.NO_TIMER;
        }
    }

    /** fireDue is the punctuator: every check due at or before the stream time. */
    private void fireDue(long streamTimeMs) {
        List<Bytes> due = new ArrayList<>();
        try (KeyValueIterator<Bytes, byte[]> it = timers.all()) {
            while (it.hasNext()) {
                KeyValue<Bytes, byte[]> e = it.next();
                if (TimerKey.due(e.key) > streamTimeMs) {
                    break;
                }
                due.add(e.key);
            }
        }
        for (Bytes k : due) {
            String key = TimerKey.customer(k);
            Customer c = customers.get(key);
            if (c != null && c.timerDueMs == TimerKey.due(k)) {
                fire(key, c);
                customers.put(key, c);
            } else {
                timers.delete(k); // not the customer's current check: stale
            }
        }
    }

    /** fire emits the trigger of c's pending check and removes the check; the caller stores c. */
    private void fire(String key, Customer c) {
        long dueMs = c.timerDueMs;
        cancel(key, c);
        if (c.cartItems == 0 || c.cartChange.isEmpty()) {
            return; // emptied or bought: cancel removes such checks, this is a guard
        }
        String id = key + "/cart_abandoned/1/" + c.cartChange;
        String json = "{\"id\":\"" + id + "\",\"rule\":\"cart_abandoned\",\"customer\":\"" + key
                + "\",\"stage\":1,\"due_at\":\"" + Instant.ofEpochMilli(dueMs) + "\",\"items\":" + c.cartItems
                + ",\"value\":" + c.cartValue + "}";
        ctx.forward(new Record<>(key, json.getBytes(StandardCharsets.UTF_8), dueMs));
    }
}
