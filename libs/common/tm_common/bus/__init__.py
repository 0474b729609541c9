"""The bus: one protocol, two transports, one consumer loop."""

from typing import TYPE_CHECKING

from tm_common.bus.consumer import Consumer
from tm_common.bus.handler import Emit, Handler, StatefulHandler
from tm_common.bus.memory import InMemoryBus
from tm_common.bus.protocol import (
    Bus,
    Delivery,
    Fence,
    GroupMissing,
    LostOwnership,
    Output,
    TransportError,
    WriterSuperseded,
)
from tm_common.bus.signing import KeyRing
from tm_common.bus.streams import Streams
from tm_common.errors import StateChanged

if TYPE_CHECKING:
    from tm_common.bus.redis import RedisStreamsBus

__all__ = ["Bus", "Consumer", "Delivery", "Emit", "Fence", "GroupMissing", "Handler", "InMemoryBus", "KeyRing",
           "LostOwnership", "Output", "RedisStreamsBus", "StateChanged", "StatefulHandler",
           "Streams", "TransportError", "WriterSuperseded"]


def __getattr__(name: str) -> "type[RedisStreamsBus]":
    if name == "RedisStreamsBus":
        from tm_common.bus.redis import RedisStreamsBus
        return RedisStreamsBus
    raise AttributeError(name)
