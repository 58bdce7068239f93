"""{service}: a consumer of the 33GOD bus, written by `god new service`.

It reads queue {queue}, which `god apply` binds to {exchange} with
{keys}.
It declares the queue exactly as registry.yaml says ({declared}), so RabbitMQ accepts it on
the queue god created; what god adds (dead-lettering, retry) comes from god's policy. Put the service's work
in `process`: an event it raises on, or one that is not JSON, is rejected without requeue and
lands in {dead_letters}.

Run: python consumer.py   (RABBITMQ_URL, else RABBIT_URL, names the broker)
"""

import asyncio
import json
import os

import aio_pika

URL = (
    os.environ.get("RABBITMQ_URL")
    or os.environ.get("RABBIT_URL")
    or "amqp://guest:guest@localhost:5672/"
)
EXCHANGE = "{exchange}"
QUEUE = "{queue}"
ROUTING_KEYS = {key_list}
ARGUMENTS = {arguments}
PREFETCH = {prefetch}


def process(envelope: dict) -> None:
    """The service's work on one event. Raise to reject it into the dead-letter queue."""
    print("handled", envelope.get("event_type"), envelope.get("event_id"), flush=True)


async def main() -> None:
    connection = await aio_pika.connect_robust(URL, timeout=10)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    exchange = await channel.declare_exchange(
        EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(QUEUE, durable=True, arguments=ARGUMENTS)
    for key in ROUTING_KEYS:
        await queue.bind(exchange, routing_key=key)
    print("consuming", QUEUE, flush=True)
    async with queue.iterator() as messages:
        async for message in messages:
            try:
                async with message.process(requeue=False):
                    process(json.loads(message.body))
            except Exception as error:  # rejected: the broker dead-letters it
                print("rejected", message.message_id, error, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
