package triggerd.peer.kstreams;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.state.Stores;

/**
 * The benchmark's Kafka Streams peer: one Processor-API topology (the three
 * co-partitioned input topics, CartProcessor with its two RocksDB stores,
 * the triggers topic), run until SIGTERM. It exits with status 1 when Kafka
 * Streams stops on an error, so that the benchmark fails.
 *
 * Flags: --name value; see defaults below.
 */
public final class Main {
    private Main() {
    }

    public static void main(String[] argv) throws InterruptedException {
        // Kafka's INFO log (every config, every rebalance) is not wanted in
        // the benchmark's log: warnings and errors only.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        Map<String, String> a = flags(argv);
        String guarantee = a.getOrDefault("guarantee", StreamsConfig.AT_LEAST_ONCE);
        if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
            throw new IllegalArgumentException("--guarantee: at_least_once or exactly_once_v2, not " + guarantee);
        }
        long stage1Ms = Long.parseLong(a.getOrDefault("stage1-ms", "3600000"));
        Duration punctuate = Duration.ofMillis(Long.parseLong(a.getOrDefault("punctuate-ms", "1000")));

        Topology t = new Topology();
        t.addSource("inputs", new StringDeserializer(), new AvroEventDeserializer(required(a, "registry")),
                required(a, "clickstream"), required(a, "transactions"), required(a, "profiles"));
        t.addProcessor("cart", () -> new CartProcessor(stage1Ms, punctuate), "inputs");
        t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(CartProcessor.CUSTOMERS),
                Serdes.String(), Customer.serde()).withCachingEnabled(), "cart");
        t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(CartProcessor.TIMERS),
                Serdes.Bytes(), Serdes.ByteArray()).withCachingEnabled(), "cart");
        t.addSink("triggers", required(a, "triggers"), new StringSerializer(), new ByteArraySerializer(), "cart");

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, required(a, "application-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, required(a, "brokers"));
        p.put(StreamsConfig.STATE_DIR_CONFIG, required(a, "state-dir"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1); // the test broker is one broker
        // Throughput settings; docs/kstreams-peer.md says why each.
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG,
                Integer.parseInt(a.getOrDefault("threads", String.valueOf(Runtime.getRuntime().availableProcessors()))));
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(a.getOrDefault("commit-ms", "1000")));
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.parseLong(a.getOrDefault("cache-bytes", String.valueOf(64L << 20))));
        p.put(StreamsConfig.ROCKSDB_CONFIG_SETTER_CLASS_CONFIG, BoundedRocksDB.class);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 256 << 10);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "none");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), 2000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG), 4 << 20);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        KafkaStreams streams = new KafkaStreams(t, p);
        CountDownLatch done = new CountDownLatch(1);
        AtomicInteger status = new AtomicInteger();
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams peer: stream thread failed: " + e);
            e.printStackTrace();
            status.set(1);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.ERROR) {
                status.set(1);
            }
            if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) {
                done.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            done.countDown();
        }));
        streams.start();
        done.await();
        if (status.get() != 0) {
            streams.close(Duration.ofSeconds(30));
            System.exit(status.get());
        }
    }

    private static Map<String, String> flags(String[] argv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 == argv.length) {
                throw new IllegalArgumentException("flags are --name value pairs; bad at " + argv[i]);
            }
            m.put(argv[i].substring(2), argv[++i]);
        }
        return m;
    }

    private static String required(Map<String, String> a, String name) {
        String v = a.get(name);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException("--" + name + " is required");
        }
        return v;
    }
}
