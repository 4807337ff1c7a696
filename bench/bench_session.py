# -*- test-case-name: tests.test_session_manager -*-
"""
Session-layer throughput: encrypt + decrypt of one payload per packet between two
L{axl.session.manager.SessionManager}s (the work every overlay packet costs twice per hop pair),
for 1280- and 65535-byte payloads; also the raw box cost and the checksum for comparison.

Run: python bench/bench_session.py [--quick]   (or: python -m bench --only session)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock  # noqa: E402
from zope.interface import implementer  # noqa: E402

from axl.crypto.keys import Identity  # noqa: E402
from axl.interfaces import IRouter  # noqa: E402
from axl.ipv6.packet import build_packet, checksum  # noqa: E402
from axl.ipv6.testing import FakeNetwork, Stack  # noqa: E402
from axl.session.keys import BoxKeyPair, open_box, seal, shared_key  # noqa: E402
from axl.session.manager import SessionManager  # noqa: E402
from bench.common import Figure, Options, benchmark, run_standalone  # noqa: E402


@implementer(IRouter)
class _Loop:
    """Hands every packet straight to the other manager (no queue: the bench measures crypto)."""

    def __init__(self, public_key: bytes) -> None:
        self.public_key = public_key
        self.peer: SessionManager | None = None
        self.last: bytes = b""

    def send(self, dest_key: bytes, data: bytes) -> None:
        self.last = data
        if data[0] != 3:  # handshake packets are delivered at once
            assert self.peer is not None
            self.peer.traffic_received(self.public_key, data)

    def send_lookup(self, partial_key: bytes) -> None:
        pass


def _pair() -> tuple[SessionManager, SessionManager, _Loop, bytes, bytes, list[int]]:
    clock = Clock()
    clock.advance(1.7e9)
    a_id, b_id = Identity(bytes(32)), Identity(bytes(range(1, 33)))
    ra, rb = _Loop(a_id.public_key), _Loop(b_id.public_key)
    got = [0]

    def count(key: bytes, payload: bytes) -> None:
        got[0] += len(payload)

    a = SessionManager(a_id, ra, clock)
    b = SessionManager(b_id, rb, clock, count)
    ra.peer, rb.peer = b, a
    a.send(b_id.public_key, b"hello")
    return a, b, ra, a_id.public_key, b_id.public_key, got


BATCH = 50


def _rate(run_batch: Callable[[int], object], size: int, seconds: float) -> tuple[float, float, int]:
    """
    Call C{run_batch(done)} (it handles L{BATCH} packets; C{done} counts those before it) until
    C{seconds} have passed: packets/s, MB/s and the packet count.
    """
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        run_batch(n)
        n += BATCH
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - start
    return n / elapsed, n * size / elapsed / 1e6, n


def bench_sessions(size: int, seconds: float) -> tuple[float, float]:
    a, b, ra, a_key, b_key, got = _pair()
    payload = os.urandom(size)

    def run_batch(done: int) -> None:
        for _ in range(BATCH):
            a.send(b_key, payload)
            b.traffic_received(a_key, ra.last)

    pps, mbs, n = _rate(run_batch, size, seconds)
    assert got[0] >= n * size
    return pps, mbs


def bench_ipv6(size: int, seconds: float) -> tuple[float, float]:
    """send_ipv6 on A -> encrypt -> decrypt on B -> core dispatch -> B's protocol handler."""
    clock = Clock()
    clock.advance(1.7e9)
    net = FakeNetwork()
    a = Stack(net, Identity(bytes(32)), clock)
    b = Stack(net, Identity(bytes(range(1, 33))), clock)
    got = b.listen(17)
    packet = build_packet(a.ipv6.address, b.ipv6.address, 17, os.urandom(size - 40))
    a.ipv6.send_ipv6(packet)
    net.flush()
    net.sent = _Discard()

    def run_batch(done: int) -> None:
        for _ in range(BATCH):
            a.ipv6.send_ipv6(packet)
            net.flush()
        assert len(got) == BATCH + (1 if done == 0 else 0), len(got)
        got.clear()

    return _rate(run_batch, size, seconds)[:2]


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        pass


def bench_box(size: int, seconds: float) -> tuple[float, float]:
    k = shared_key(BoxKeyPair.generate().public, BoxKeyPair.generate().private)
    payload = os.urandom(size)

    def run_batch(done: int) -> None:
        for i in range(done + 1, done + BATCH + 1):
            open_box(seal(payload, i, k), i, k)

    return _rate(run_batch, size, seconds)[:2]


def bench_checksum(size: int, seconds: float) -> tuple[float, float]:
    data = os.urandom(size)

    def run_batch(done: int) -> None:
        for _ in range(BATCH):
            checksum(data)

    return _rate(run_batch, size, seconds)[:2]


@benchmark("session", "session encrypt + decrypt (XSalsa20-Poly1305, cached keys); IPv6 send_ipv6 → delivery")
def measure(opts: Options) -> list[Figure]:
    seconds = 0.3 if opts.quick else 2.0
    figures = []
    for key, label, fn in (
        ("session", "session encrypt+decrypt", bench_sessions),
        ("ipv6", "IPv6 send_ipv6 → delivery through sessions", bench_ipv6),
    ):
        pps, _ = fn(1280, seconds)
        figures.append(Figure(f"session.{key}_1280", f"{label}, 1280 B", pps, "packets/s"))
        _, mbs = fn(65535, seconds)
        figures.append(Figure(f"session.{key}_65535", f"{label}, 65535 B", mbs, "MB/s"))
    return figures


if __name__ == "__main__":
    run_standalone(measure)
