"""A consumer of the 33GOD bus written the way the platform's docs and services write one, for
tests/consumers.rs. CLIENT picks the client and the way it declares its queue:

- faststream: the recommended pattern, RabbitQueue(name, routing_key=..., durable=True) with
  RabbitExchange(name, type=TOPIC, durable=True); run as `faststream run consumer:app`;
- aio-pika: connect_robust, declare_queue(durable=True, arguments=ARGUMENTS), message.process();
- pika: queue_declare(durable=True, arguments=ARGUMENTS), basic_consume;
- passive: pika's queue_declare(passive=True): the queue must exist, nothing is compared.

Environment: RABBITMQ_URL, EXCHANGE, QUEUE, ROUTING_KEY, ARGUMENTS (a JSON object: what the
registry's `arguments` lists, `x-queue-type` included for quorum queues).

Prints `ready` once consuming, then `handled <event_id>` for each event it takes and
`rejected <event_id>` for each it rejects without requeueing (one whose payload has
"fail": true), each on a line of its own, flushed at once.
"""

import asyncio
import json
import os

URL = os.environ["RABBITMQ_URL"]
EXCHANGE = os.environ["EXCHANGE"]
QUEUE = os.environ["QUEUE"]
ROUTING_KEY = os.environ["ROUTING_KEY"]
ARGUMENTS = json.loads(os.environ.get("ARGUMENTS") or "{}")
CLIENT = os.environ.get("CLIENT", "faststream")


def say(*words):
    print(*words, flush=True)


class Rejected(Exception):
    """The event asked to fail: the consumer gives up on it."""


def take(envelope):
    """Handles one event; raises Rejected for one whose payload says so."""
    event_id = envelope.get("event_id")
    if (envelope.get("payload") or {}).get("fail"):
        say("rejected", event_id)
        raise Rejected(event_id)
    say("handled", event_id)


if CLIENT == "faststream":
    from faststream import AckPolicy, FastStream
    from faststream.rabbit import (
        ExchangeType,
        QueueType,
        RabbitBroker,
        RabbitExchange,
        RabbitQueue,
    )

    arguments = dict(ARGUMENTS)
    queue_type = QueueType(arguments.pop("x-queue-type", "classic"))
    broker = RabbitBroker(URL)
    app = FastStream(broker)
    exchange = RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, durable=True)
    queue = RabbitQueue(
        QUEUE,
        queue_type=queue_type,
        routing_key=ROUTING_KEY,
        durable=True,
        arguments=arguments or None,
    )

    @broker.subscriber(queue, exchange, ack_policy=AckPolicy.REJECT_ON_ERROR)
    async def handle(envelope: dict):
        take(envelope)

    @app.after_startup
    async def ready():
        say("ready")


async def with_aio_pika():
    import aio_pika

    connection = await aio_pika.connect_robust(URL, timeout=10)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=10)
    exchange = await channel.declare_exchange(
        EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(QUEUE, durable=True, arguments=ARGUMENTS)
    await queue.bind(exchange, routing_key=ROUTING_KEY)
    say("ready")
    async with queue.iterator() as messages:
        async for message in messages:
            try:
                async with message.process(requeue=False):
                    take(json.loads(message.body))
            except Rejected:
                pass


def with_pika(passive):
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    if passive:
        channel.queue_declare(QUEUE, passive=True)
    else:
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        channel.queue_declare(QUEUE, durable=True, arguments=ARGUMENTS)
        channel.queue_bind(QUEUE, EXCHANGE, routing_key=ROUTING_KEY)
    channel.basic_qos(prefetch_count=10)

    def on_message(ch, method, _properties, body):
        try:
            take(json.loads(body))
            ch.basic_ack(method.delivery_tag)
        except Rejected:
            ch.basic_reject(method.delivery_tag, requeue=False)

    channel.basic_consume(QUEUE, on_message)
    say("ready")
    channel.start_consuming()


if __name__ == "__main__":
    if CLIENT == "aio-pika":
        asyncio.run(with_aio_pika())
    else:
        with_pika(passive=CLIENT == "passive")
