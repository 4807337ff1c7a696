# -*- test-case-name: tests.test_tcp_stack -*-
"""
In-memory IPv6 layers joined by a lossy link, for tests and benchmarks of the TCP stack:
loss, duplication, delay with jitter (hence reordering), all on an injected clock.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import Clock
from zope.interface import implementer

from axl.crypto import addr_for_key
from axl.interfaces import IIPv6Layer

__all__ = ["FakeIPv6Layer", "LossyNetwork", "run_until"]

Handler = Callable[[bytes, bytes], None]


@implementer(IIPv6Layer)
class FakeIPv6Layer:
    """One node's IPv6 layer on a L{LossyNetwork}; C{sent} records packets if C{record}."""

    def __init__(self, key: bytes, network: LossyNetwork | None = None, mtu: int = 65535,
                 address: bytes | None = None, record: bool = False) -> None:
        self.key = key
        self.address = address if address is not None else addr_for_key(key)
        self.mtu = mtu
        self.handlers: dict[int, Handler] = {}
        self.network = network
        self.record = record
        self.sent: list[bytes] = []
        if network is not None:
            network.attach(self)

    def register_protocol(self, next_header: int, handler: Handler) -> None:
        self.handlers[next_header] = handler

    def register_ptb_handler(self, handler: object) -> None:
        self.ptb_handler = handler

    def send_ipv6(self, packet: bytes) -> None:
        if len(packet) > self.mtu:
            raise ValueError(f"packet of {len(packet)} bytes exceeds MTU {self.mtu}")
        if self.record:
            self.sent.append(packet)
        if self.network is not None:
            self.network.route(self, packet)

    def deliver(self, source_key: bytes, packet: bytes) -> None:
        """Hand a packet to the registered protocol handler."""
        handler = self.handlers.get(packet[6])
        if handler is not None:
            handler(source_key, packet)


class LossyNetwork:
    """
    Routes packets between attached layers by destination address. Each packet is lost with
    probability C{loss}, duplicated with C{duplicate}, and delayed by C{delay} plus a uniform
    C{jitter} (so packets overtake each other). C{down} keys lose everything to and from them.
    """

    def __init__(self, clock: IReactorTime, loss: float = 0.0, duplicate: float = 0.0,
                 delay: float = 0.0, jitter: float = 0.0, seed: int = 0) -> None:
        self.clock = clock
        self.loss, self.duplicate, self.delay, self.jitter = loss, duplicate, delay, jitter
        self.rng = random.Random(seed)
        self.layers: dict[bytes, FakeIPv6Layer] = {}
        self.down: set[bytes] = set()
        self._heap: list[tuple[float, int, FakeIPv6Layer, bytes, bytes]] = []
        self._n = 0
        self._timer: IDelayedCall | None = None
        self.delivered = self.lost = 0

    def attach(self, layer: FakeIPv6Layer) -> None:
        """Connect C{layer} to this network (reachable at its address)."""
        self.layers[bytes(layer.address)] = layer
        layer.network = self

    def route(self, src: FakeIPv6Layer, packet: bytes) -> None:
        """Carry C{packet} from C{src} to the layer owning its destination: lost, or delayed."""
        dst = self.layers.get(bytes(packet[24:40]))
        if dst is None or src.key in self.down or dst.key in self.down:
            self.lost += 1
            return
        rng = self.rng
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        for _ in range(copies):
            if self.loss and rng.random() < self.loss:
                self.lost += 1
                continue
            when = self.clock.seconds() + self.delay + (rng.random() * self.jitter if self.jitter else 0)
            self._n += 1
            heapq.heappush(self._heap, (when, self._n, dst, src.key, packet))
        self._schedule()

    @property
    def in_flight(self) -> int:
        """Packets sent and not delivered yet."""
        return len(self._heap)

    def _schedule(self) -> None:
        if not self._heap:
            return
        first = self._heap[0][0]
        now = self.clock.seconds()
        if self._timer is not None:
            if self._timer.getTime() <= first:
                return
            self._timer.cancel()
        self._timer = self.clock.callLater(max(first - now, 0), self._fire)

    def _fire(self) -> None:
        self._timer = None
        heap = self._heap
        now = self.clock.seconds()
        while heap and heap[0][0] <= now:
            _, _, dst, src_key, packet = heapq.heappop(heap)
            self.delivered += 1
            dst.deliver(src_key, packet)
        self._schedule()

    def cancel(self) -> None:
        """Drop everything in flight and cancel the delivery timer."""
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def run_until(clock: Clock, done: Callable[[], bool], max_time: float = 3600.0) -> bool:
    """
    Advance a C{twisted.internet.task.Clock} call by call until C{done()} or nothing is left
    to run or C{max_time} simulated seconds passed. Returns C{done()}.
    """
    start = clock.seconds()
    calls = clock.calls
    while not done():
        if not calls:
            return done()
        step = calls[0].getTime() - clock.seconds()
        if clock.seconds() + step - start > max_time:
            return done()
        clock.advance(max(step, 0.0))
    return True
