"""Writes carts to a raw clickstream keyed by session ID, and purchases.

For each customer of a round: an add_to_cart to the raw clickstream topic,
keyed by a fresh session ID (not the customer ID: the topic is raw, with a
partition count of its own), then, for every second customer, a purchase to
the co-partitioned transactions topic keyed by customer ID, a few
milliseconds later. The producer is confluent-kafka (librdkafka) with its
default settings: its own partitioner, batching and linger. Event times are
the wall clock at the moment of writing. Prints one JSON line per event:
{"customer", "source": "clickstream"|"transactions", "event_id", "type",
"event_time", "product_id", "quantity"}, in the order written.

Usage: raw_session_carts.py BOOTSTRAP RAW_CLICKSTREAM TRANSACTIONS ROUND CUSTOMERS GAP_MS
"""

import datetime
import json
import sys
import time
import uuid

from confluent_kafka import Producer


def stamp():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main():
    bootstrap, clicks, txs, rnd, customers, gap_ms = sys.argv[1:7]
    gap = int(gap_ms) / 1000.0
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(int(customers)):
        cust = f"raw-{rnd}-{i}"
        cart = {
            "event_id": f"cart-{rnd}-{i}", "customer_id": cust, "event_time": stamp(),
            "type": "add_to_cart", "product_id": "sku-1", "quantity": 1,
            "price": {"minor": 1999, "currency": "EUR"},
            "session_id": str(uuid.uuid4()),
        }
        p.produce(clicks, key=cart["session_id"], value=json.dumps(cart), on_delivery=delivered)
        print(json.dumps({"customer": cust, "source": "clickstream", "event_id": cart["event_id"], "type": cart["type"],
                          "event_time": cart["event_time"], "product_id": "sku-1", "quantity": 1}))
        if i % 2 == 0:
            time.sleep(gap)
            purchase = {
                "event_id": f"buy-{rnd}-{i}", "customer_id": cust, "event_time": stamp(),
                "type": "purchase", "order_id": f"o-{rnd}-{i}",
                "amount": {"minor": 1999, "currency": "EUR"},
                "items": [{"product_id": "sku-1", "quantity": 1, "unit_price": {"minor": 1999, "currency": "EUR"}}],
            }
            p.produce(txs, key=cust, value=json.dumps(purchase), on_delivery=delivered)
            print(json.dumps({"customer": cust, "source": "transactions", "event_id": purchase["event_id"],
                              "type": "purchase", "event_time": purchase["event_time"]}))
        p.poll(0)
    left = p.flush(30)
    if left or errors:
        sys.exit(f"not delivered: {left} left, errors {errors[:3]}")


if __name__ == "__main__":
    main()
