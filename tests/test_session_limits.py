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
from axl.session.codec import TYPE_INIT, TYPE_TRAFFIC, SessionInit, encode_init
from axl.session.keys import BoxKeyPair, x25519_public
from axl.session.manager import (
    INIT_BURST,
    INIT_RATE,
    INIT_TOTAL_BURST,
    MAX_PENDING,
    MAX_SESSIONS,
    SessionManager,
)


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


def init_from(remote: Identity, recipient: bytes) -> bytes:
    """A valid init from C{remote} to the node whose public key is C{recipient}."""
    init = SessionInit(BoxKeyPair.generate().public, BoxKeyPair.generate().public, 0, 1)
    return encode_init(TYPE_INIT, init, remote, x25519_public(recipient))


class SessionBoundTests(SynchronousTestCase):
    """The cap on sessions and waiting remotes (L{MAX_SESSIONS}, L{MAX_PENDING})."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.me = Identity(bytes([1]) * 32)
        self.manager = SessionManager(self.me, _Router(), self.clock)
        self.addCleanup(self.manager.stop)

    def test_defaults(self) -> None:
        self.assertEqual((self.manager.max_sessions, self.manager.max_pending), (MAX_SESSIONS, MAX_PENDING))

    def test_init_flood_with_fresh_keys(self) -> None:
        """
        Inits from 300 fresh keys (within the init limits) never make us hold more than the cap;
        a session active meanwhile is kept, the idle ones give way, counted.
        """
        self.manager.max_sessions = 32
        friend = Identity(bytes([3]) * 32)
        self.manager.traffic_received(friend.public_key, init_from(friend, self.me.public_key))
        for i in range(300):
            remote = Identity(b"flood" + i.to_bytes(27, "big"))
            self.manager.traffic_received(remote.public_key, init_from(remote, self.me.public_key))
            self.clock.advance(0.01)
            session = self.manager.session(friend.public_key)
            assert session is not None
            session.last_active = self.clock.seconds()  # what its traffic would do
            self.assertLessEqual(len(self.manager.sessions_info()), 32)
        self.assertEqual(self.manager.dropped_inits, 0)
        self.assertEqual(self.manager.evicted_sessions, 301 - 32)
        self.assertIsNotNone(self.manager.session(friend.public_key))
        self.assertIsNotNone(self.manager.session(remote.public_key))

    def test_pending_remotes_capped(self) -> None:
        """Sends to more new remotes than the cap: the ones past it are dropped, counted."""
        self.manager.max_pending = 4
        keys = [Identity(bytes([10 + i]) * 32).public_key for i in range(10)]
        for key in keys:
            self.manager.send(key, b"hello")
        self.assertEqual([self.manager.has_buffer(k) for k in keys], [True] * 4 + [False] * 6)
        self.assertEqual(self.manager.buffer_dropped, 6)
