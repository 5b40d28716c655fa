package triggerd.peer.kstreams;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;

/**
 * Decodes the benchmark's inputs: Avro records in the Confluent framing
 * (magic byte 0, a 4-byte schema ID, the Avro binary). Each writer schema
 * is fetched once from the schema registry. Confluent's own
 * KafkaAvroDeserializer does the same but is not on Maven Central.
 *
 * One instance serves every stream thread (a source node's deserializer is
 * shared by the tasks), so the reusable decoder and record are per thread.
 */
final class AvroEventDeserializer implements Deserializer<Event> {
    private final String registry;
    private final HttpClient http = HttpClient.newHttpClient();
    private final ConcurrentHashMap<Integer, GenericDatumReader<GenericRecord>> readers = new ConcurrentHashMap<>();
    private final ThreadLocal<BinaryDecoder> decoder = new ThreadLocal<>();
    private final ThreadLocal<GenericRecord> reuse = new ThreadLocal<>();

    AvroEventDeserializer(String registry) {
        this.registry = registry;
    }

    @Override
    public Event deserialize(String topic, byte[] data) {
        if (data == null || data.length < 5 || data[0] != 0) {
            throw new SerializationException("not Confluent-framed Avro (topic " + topic + ")");
        }
        int id = ByteBuffer.wrap(data, 1, 4).getInt();
        GenericDatumReader<GenericRecord> reader = readers.computeIfAbsent(id, this::fetch);
        BinaryDecoder d = DecoderFactory.get().binaryDecoder(data, 5, data.length - 5, decoder.get());
        decoder.set(d);
        GenericRecord r;
        try {
            GenericRecord old = reuse.get();
            r = reader.read(old != null && old.getSchema() == reader.getSchema() ? old : null, d);
        } catch (IOException e) {
            throw new SerializationException("decode (topic " + topic + ")", e);
        }
        reuse.set(r);
        Event ev = new Event();
        ev.id = r.get("event_id").toString();
        ev.type = r.get("type").toString();
        ev.timeMs = (Long) r.get("event_time");
        Schema s = r.getSchema();
        if (s.getField("quantity") != null && r.get("quantity") != null) {
            ev.quantity = (Integer) r.get("quantity");
        }
        if (s.getField("price") != null && r.get("price") instanceof GenericRecord p) {
            ev.priceMinor = (Long) p.get("minor");
        }
        if (s.getField("amount") != null && r.get("amount") instanceof GenericRecord a) {
            ev.amountMinor = (Long) a.get("minor");
        }
        return ev;
    }

    /** fetch reads schema id from the registry's GET /schemas/ids/{id}. */
    private GenericDatumReader<GenericRecord> fetch(int id) {
        HttpRequest req = HttpRequest.newBuilder(URI.create(registry + "/schemas/ids/" + id)).GET().build();
        try {
            HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
            if (resp.statusCode() != 200) {
                throw new SerializationException("schema " + id + ": registry answered " + resp.statusCode() + ": " + resp.body());
            }
            // Jackson comes with Avro.
            JsonNode text = new ObjectMapper().readTree(resp.body()).get("schema");
            if (text == null || !text.isTextual()) {
                throw new SerializationException("schema " + id + ": no schema in " + resp.body());
            }
            Schema schema = new Schema.Parser().parse(text.asText());
            return new GenericDatumReader<>(schema, schema, new GenericData());
        } catch (IOException e) {
            throw new SerializationException("schema " + id, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SerializationException("schema " + id, e);
        }
    }
}
