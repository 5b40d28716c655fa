"""Writes carts the way a Python service does, with librdkafka's DEFAULT partitioner.

For each customer: a profile_update to the profiles topic and an add_to_cart
to the clickstream topic, keyed by the customer ID. The producer is
confluent-kafka with no partitioner setting (librdkafka's default,
consistent_random: CRC32 of the key). Event times are the wall clock. After
the flush, prints one JSON line per customer with the partitions the broker
acknowledged: {"customer": ..., "clickstream": P, "profiles": P}.

Usage: carts_default_partitioner.py BOOTSTRAP CLICKSTREAM PROFILES PREFIX CUSTOMERS
"""

import datetime
import json
import sys

from confluent_kafka import Producer


def now():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main():
    bootstrap, clicks, profiles, prefix, customers = sys.argv[1:6]
    errors, parts = [], {}

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        parts.setdefault(msg.key().decode(), {})[msg.topic()] = msg.partition()

    p = Producer({"bootstrap.servers": bootstrap})
    names = [f"{prefix}-{i}" for i in range(int(customers))]
    for i, cust in enumerate(names):
        profile = {"event_id": f"prof-{cust}", "customer_id": cust, "event_time": now(),
                   "type": "profile_update", "country": "DE"}
        p.produce(profiles, key=cust, value=json.dumps(profile), on_delivery=delivered)
        cart = {"event_id": f"cart-{cust}", "customer_id": cust, "event_time": now(),
                "type": "add_to_cart", "product_id": "sku-1", "quantity": 1,
                "price": {"minor": 1999, "currency": "EUR"}}
        p.produce(clicks, key=cust, value=json.dumps(cart), on_delivery=delivered)
        p.poll(0)
    left = p.flush(30)
    if left or errors:
        sys.exit(f"not delivered: {left} left, errors {errors[:3]}")
    for cust in names:
        got = parts[cust]
        print(json.dumps({"customer": cust, "clickstream": got[clicks], "profiles": got[profiles]}))


if __name__ == "__main__":
    main()
