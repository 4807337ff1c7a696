# -*- test-case-name: tests.test_session_limits -*-
"""
Tests for the session layer's init limits (issue 12): inits, acks and answers to unknown traffic
cost a Diffie-Hellman and a signature each, so a flood of them is cut per key and in all.
"""

from __future__ import annotations

from zope.interface import implementer

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity
from axl.interfaces import IRouter
from axl.session.codec import TYPE_INIT, TYPE_TRAFFIC
from axl.session.manager import INIT_BURST, INIT_RATE, INIT_TOTAL_BURST, SessionManager


@implementer(IRouter)
class _Router:
    mtu = 65535

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, dest_key: bytes, data: bytes) -> None:
        self.sent.append((dest_key, data))

    def send_lookup(self, partial_key: bytes) -> None:
        pass


class InitLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.router = _Router()
        self.manager = SessionManager(Identity(bytes([1]) * 32), self.router, self.clock)
        self.addCleanup(self.manager.stop)
        self.attacker = Identity(bytes([2]) * 32).public_key

    def test_unknown_traffic_answered_within_the_limit(self) -> None:
        """10,000 traffic packets from a key without a session get at most INIT_BURST inits back."""
        for _ in range(10_000):
            self.manager.traffic_received(self.attacker, bytes([TYPE_TRAFFIC]) + b"x" * 40)
        self.assertEqual(len(self.router.sent), INIT_BURST)
        self.assertEqual(self.manager.dropped_inits, 10_000 - INIT_BURST)
        self.clock.advance(1.0)
        self.manager.traffic_received(self.attacker, bytes([TYPE_TRAFFIC]) + b"x" * 40)
        self.assertEqual(len(self.router.sent), INIT_BURST + 1)
        self.assertEqual(INIT_RATE, 4.0)

    def test_init_flood_from_many_keys(self) -> None:
        """Inits from 1000 keys at once: at most INIT_TOTAL_BURST are even decoded."""
        for n in range(1000):
            key = n.to_bytes(2, "big") * 16
            self.manager.traffic_received(key, bytes([TYPE_INIT]) + b"\x00" * 192)
        self.assertEqual(self.manager.dropped_inits, 1000 - INIT_TOTAL_BURST)
