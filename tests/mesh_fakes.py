"""Shared fakes for the mesh tests: a recording L{ILink} and deterministic identities."""

from __future__ import annotations

import itertools
import random

from zope.interface import implementer

from axl.crypto.keys import Identity
from axl.interfaces import ILink

_order = itertools.count(1000)


@implementer(ILink)
class FakeLink:
    """An up link that records the frames the router sends on it."""

    def __init__(
        self, remote_key: bytes, priority: int = 0, order: int | None = None, inbound: bool = False
    ) -> None:
        self.remote_key = remote_key
        self.priority = priority
        self.order = next(_order) if order is None else order
        self.inbound = inbound
        self.uri = "tcp://192.0.2.1:1"
        self.frames: list[tuple[int, bytes]] = []
        self.closed: list[str] = []

    def send_frame(self, frame_type: int, payload: bytes) -> None:
        self.frames.append((frame_type, payload))

    def close(self, reason: str) -> None:
        self.closed.append(reason)

    def types(self) -> list[int]:
        return [t for t, _ in self.frames]

    def of_type(self, frame_type: int) -> list[bytes]:
        return [p for t, p in self.frames if t == frame_type]


def identities(n: int, seed: int = 7) -> list[Identity]:
    """C{n} deterministic identities sorted by public key (lowest first)."""
    rng = random.Random(seed)
    return sorted((Identity(rng.randbytes(32)) for _ in range(n)), key=lambda i: i.public_key)


def counter_randbytes(start: int = 1):  # type: ignore[no-untyped-def]
    """A deterministic C{randbytes}: successive 8-byte big-endian counters."""
    counter = itertools.count(start)

    def randbytes(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return randbytes
