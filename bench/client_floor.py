"""What the Kafka client alone costs per event, without Faust's per-message stream.

Pre-produces ``--events`` small events to a topic on a Tansu broker it starts, then times a
loop that does only the Kafka side of the worker's job: consume in batches with aiokafka's
``getmany`` (up to 500 records), produce one 1 KB message per event (a list's size), wait
for the batch's acknowledgements, commit the offsets. No parsing, no model, no Redis. The
CPU per event it reports, set beside ``bench.speed``'s framework floor (the whole worker
with the cheapest model), says how much of the worker's cost is Faust's stream rather than
Kafka itself (see ``bench/results/speed.md``).

    python -m bench.client_floor --events 30000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamreco import embedded

EVENT = b'{"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i1", "ts": 1700000000}'
LIST = b"x" * 1000  # about the size of a published top-10 list
BATCH = 500


async def measure(bootstrap: str, events: int, partitions: int = 4) -> dict[str, float]:
    """Events/s and CPU us/event of the consume-produce-commit loop over ``events`` events."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("floor-in", partitions, 1), NewTopic("floor-out", partitions, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=1 << 20)
    consumer = AIOKafkaConsumer("floor-in", bootstrap_servers=bootstrap, group_id="floor",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        sent = [await producer.send("floor-in", EVENT, key=f"u{k % 5000}".encode()) for k in range(events)]
        await asyncio.gather(*sent)
        done, started, cpu = 0, time.perf_counter(), time.process_time()
        while done < events:
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            acks = [await producer.send("floor-out", LIST, key=m.key) for ms in batches.values() for m in ms]
            await asyncio.gather(*acks)
            await consumer.commit()
            done += len(acks)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await consumer.stop()
        await producer.stop()
    return {"events": done, "events_per_second": done / seconds, "cpu_us_per_event": 1e6 * cpu / done}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.client_floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args(argv)
    with embedded.broker() as broker:
        result = asyncio.run(measure(broker.bootstrap.removeprefix("kafka://"), args.events))
    print(f"{result['events']:,} events: {result['events_per_second']:,.0f} events/s, "
          f"{result['cpu_us_per_event']:,.0f} us CPU/event (aiokafka getmany + send, no Faust)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
