package triggerd.peer.kstreams;

/**
 * What the cart logic reads of an input event (clickstream, transaction or
 * profile): the fields the goka peer reads too, nothing else.
 */
final class Event {
    String id;
    String type;
    long timeMs; // event_time, epoch milliseconds (Avro timestamp-millis)
    int quantity; // add_to_cart
    long priceMinor; // unit price, minor units
    long amountMinor; // purchase amount, minor units
}
