"""The streaming path: events through a Redis Stream into per-user 30-minute windows in the Feast online store."""

from tailor.stream.broker import Broker, StreamBusy, connect
from tailor.stream.config import PUSH_SOURCE, StreamConfig
from tailor.stream.consumer import Consumer, ConsumeStats
from tailor.stream.events import EventRejected, Rejection
from tailor.stream.producer import PublishReport, publish, publish_event

__all__ = [
    "PUSH_SOURCE",
    "Broker",
    "ConsumeStats",
    "Consumer",
    "EventRejected",
    "PublishReport",
    "Rejection",
    "StreamBusy",
    "StreamConfig",
    "connect",
    "publish",
    "publish_event",
]
