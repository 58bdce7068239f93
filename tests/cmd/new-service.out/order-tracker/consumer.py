"""order-tracker: a consumer of the 33GOD bus, written by `god new service`.

It reads queue services.shop.order_tracker, which `god apply` binds to bloodbank.events.v1 with
`shop.order.created`, `shop.order.paid`.
It declares the queue exactly as registry.yaml says (no arguments), so RabbitMQ accepts it on
the queue god created; what god adds (dead-lettering, retry) comes from god's policy. Put the service's work
in `process`: an event it raises on, or one that is not a JSON object, is rejected without
requeue and lands in queue services.shop.order_tracker_dlq.

Run: faststream run consumer:app   (RABBITMQ_URL, else RABBIT_URL, names the broker)
"""

import os

from faststream import AckPolicy, FastStream
from faststream.rabbit import (
    Channel,
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)

URL = (
    os.environ.get("RABBITMQ_URL")
    or os.environ.get("RABBIT_URL")
    or "amqp://guest:guest@localhost:5672/"
)
PREFETCH = 10

broker = RabbitBroker(URL)
app = FastStream(broker)

EXCHANGE = RabbitExchange("bloodbank.events.v1", type=ExchangeType.TOPIC, durable=True)
QUEUE = RabbitQueue(
    "services.shop.order_tracker",
    queue_type=QueueType.CLASSIC,
    routing_key="shop.order.created",
    durable=True,
    arguments={},
)


def process(envelope: dict) -> None:
    """The service's work on one event. Raise to reject it into the dead-letter queue."""
    print("handled", envelope.get("event_type"), envelope.get("event_id"), flush=True)


@broker.subscriber(
    QUEUE,
    EXCHANGE,
    channel=Channel(prefetch_count=PREFETCH),
    ack_policy=AckPolicy.REJECT_ON_ERROR,
)
async def handle(envelope: dict) -> None:
    process(envelope)


@app.after_startup
async def consuming() -> None:
    print("consuming", QUEUE.name, flush=True)
