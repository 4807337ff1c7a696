"""
Fakes for the forward tests: a StringTransport that half-closes and records resets, and a dialer
whose connects the test completes by hand.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from axl.forward.spec import OverlayTarget
from axl.forward.splice import SpliceEnd
from axl.ipv6.testing import FakeNetwork, Stack
from axl.ipv6.udp import UDPLayer
from axl.overlay_address import OverlayAddress
from tests.vectors import identity


class HalfCloseTransport(StringTransport):
    """A StringTransport that records C{loseWriteConnection} and C{abortConnection}."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_closed = False
        self.aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class FakeDialer:
    """Records each C{dial(target)}; the test fires the Deferreds in C{calls}."""

    def __init__(self) -> None:
        self.calls: list[tuple[OverlayTarget, Deferred[SpliceEnd]]] = []

    def dial(self, target: OverlayTarget) -> Deferred[SpliceEnd]:
        d: Deferred[SpliceEnd] = Deferred()
        self.calls.append((target, d))
        return d


def connected_end(host: Any = None, peer: Any = None) -> tuple[SpliceEnd, HalfCloseTransport]:
    """A L{SpliceEnd} already connected to a L{HalfCloseTransport}."""
    end = SpliceEnd()
    transport = HalfCloseTransport(hostAddress=host, peerAddress=peer)
    end.makeConnection(transport)
    return end, transport


def overlay_end(our_key: bytes, port: int) -> tuple[SpliceEnd, HalfCloseTransport]:
    """A connected end whose host address is an overlay address (as the overlay TCP gives)."""
    return connected_end(host=OverlayAddress(our_key, port), peer=OverlayAddress(our_key, 1))


def two_stacks(test: Any, clock: Any) -> tuple[FakeNetwork, Stack, Stack]:
    """Nodes A and B (sessions + IPv6 + UDP) on one L{FakeNetwork}, stopped in cleanup."""
    clock.advance(1.7e9)  # session init times need a realistic clock
    network = FakeNetwork()
    a, b = Stack(network, identity("A"), clock), Stack(network, identity("B"), clock)
    test.addCleanup(a.stop)
    test.addCleanup(b.stop)
    return network, a, b


def udp_of(stack: Stack) -> UDPLayer:
    """The UDP layer built with C{stack}'s overlay."""
    udp = stack.overlay.udp
    assert isinstance(udp, UDPLayer)
    return udp
