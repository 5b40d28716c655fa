"""Writes carts and purchases the way a shop's Python services do.

For each customer of a round: an add_to_cart to the clickstream topic, then,
for every second customer, a purchase to the transactions topic a few
milliseconds later. The producer is confluent-kafka (librdkafka) with its
default settings: its own partitioner, batching and linger. Event times are
the wall clock at the moment of writing ("live"), or the same moment ten minutes
in the past ("past": a replay written live). Prints one JSON line per
customer: {"customer": ..., "bought": true|false}.

Usage: cart_then_purchase.py BOOTSTRAP CLICKSTREAM TRANSACTIONS ROUND CUSTOMERS GAP_MS live|past
"""

import datetime
import json
import sys
import time

from confluent_kafka import Producer


def stamp(mode):
    now = datetime.datetime.now(datetime.timezone.utc)
    if mode == "past":
        now -= datetime.timedelta(minutes=10)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main():
    bootstrap, clicks, txs, rnd, customers, gap_ms, mode = sys.argv[1:8]
    customers, gap = int(customers), int(gap_ms) / 1000.0
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(int(customers)):
        cust = f"py-{rnd}-{i}"
        cart = {
            "event_id": f"cart-{rnd}-{i}", "customer_id": cust, "event_time": stamp(mode),
            "type": "add_to_cart", "product_id": "sku-1", "quantity": 1,
            "price": {"minor": 1999, "currency": "EUR"},
        }
        p.produce(clicks, key=cust, value=json.dumps(cart), on_delivery=delivered)
        bought = i % 2 == 0
        if bought:
            time.sleep(gap)
            purchase = {
                "event_id": f"buy-{rnd}-{i}", "customer_id": cust, "event_time": stamp(mode),
                "type": "purchase", "order_id": f"o-{rnd}-{i}",
                "amount": {"minor": 1999, "currency": "EUR"},
                "items": [{"product_id": "sku-1", "quantity": 1, "unit_price": {"minor": 1999, "currency": "EUR"}}],
            }
            p.produce(txs, key=cust, value=json.dumps(purchase), on_delivery=delivered)
        p.poll(0)
        print(json.dumps({"customer": cust, "bought": bought}))
    left = p.flush(30)
    if left or errors:
        sys.exit(f"not delivered: {left} left, errors {errors[:3]}")


if __name__ == "__main__":
    main()
