# -*- test-case-name: tests.test_session_manager -*-
"""
Tests for L{axl.session.manager} and L{axl.session.session}: the session state machine of
spec/yggdrasil-wire.md section 4.5 between our own stacks on a fake network.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from axl.crypto.keys import Identity
from axl.interfaces import ISessions
from axl.ipv6.testing import FakeNetwork, Wire
from axl.session.codec import TYPE_ACK, TYPE_INIT, TYPE_TRAFFIC, SessionInit, decode_init, decode_traffic_header
from axl.session.keys import x25519_private
from axl.session.manager import (
    MAX_BUFFERED_BYTES,
    MAX_BUFFERED_PER_KEY,
    MAX_EARLY_TRAFFIC,
    SessionManager,
)
from axl.session.session import SESSION_TIMEOUT

T0 = 1795625997.0


def describe(wire: Wire, idents: dict[bytes, Identity]) -> tuple[Any, ...]:
    """(kind, fields) of one wire packet; inits/acks are opened with the recipient's key."""
    source, dest, data = wire
    if data[0] in (TYPE_INIT, TYPE_ACK):
        init = decode_init(data, x25519_private(idents[dest].private_key), source)
        kind = "init" if data[0] == TYPE_INIT else "ack"
        return (kind, init.key_seq, init.seq)
    their, ours, nonce, _ = decode_traffic_header(data)
    return ("traffic", their, ours, nonce)


class Pair:
    """Two session managers, A and B, on one fake network, recording deliveries."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.net = FakeNetwork()
        self.a_id = Identity(bytes(32))
        self.b_id = Identity(bytes(range(1, 33)))
        self.idents = {self.a_id.public_key: self.a_id, self.b_id.public_key: self.b_id}
        self.got: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self.a = self.manager(self.a_id)
        self.b = self.manager(self.b_id)

    def manager(self, ident: Identity) -> SessionManager:
        router = self.net.router(ident.public_key)
        got = self.got[ident.public_key] = []
        mgr = SessionManager(ident, router, self.clock, lambda k, p: got.append((k, p)))
        router.on_traffic = mgr.traffic_received
        return mgr

    def wire(self, start: int = 0) -> list[tuple[Any, ...]]:
        return [
            (self.idents[s] is self.a_id and "A" or "B",) + describe((s, d, x), self.idents)
            for (s, d, x) in self.net.sent[start:]
        ]

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


class HandshakeTests(SynchronousTestCase):
    """The typical handshake of spec 4.6 and data both ways."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.p = Pair(self.clock)
        self.addCleanup(self.p.stop)

    def test_interface(self) -> None:
        """SessionManager provides ISessions."""
        self.assertTrue(verifyObject(ISessions, self.p.a))

    def test_typical_handshake(self) -> None:
        """Init(0), Ack(1), Ack(1), then traffic (1, 1, n=1); B gets the payload from A's key."""
        self.p.a.send(self.p.b_id.public_key, b"\x02\x01")
        self.assertTrue(self.p.a.has_buffer(self.p.b_id.public_key))
        self.p.net.flush()
        t = int(T0)
        self.assertEqual(
            self.p.wire(),
            [
                ("A", "init", 0, t),
                ("B", "ack", 1, t),
                ("A", "ack", 1, t),
                ("A", "traffic", 1, 1, 1),
            ],
        )
        self.assertEqual(
            self.p.got[self.p.b_id.public_key], [(self.p.a_id.public_key, b"\x02\x01")]
        )
        self.assertFalse(self.p.a.has_buffer(self.p.b_id.public_key))

    def test_buffer_keeps_order(self) -> None:
        """Sends before the session exists are all kept and delivered in order; each re-sends the init."""
        b = self.p.b_id.public_key
        self.p.net.filter = lambda w: None  # nothing arrives
        self.p.a.send(b, b"one")
        self.p.a.send(b, b"two")
        self.assertEqual(self.p.net.flush(), 2)
        self.assertEqual((self.p.a.buffered_packets, self.p.a.buffered_bytes), (2, 6))
        self.p.net.filter = None
        self.p.a.send(b, b"three")
        self.p.net.flush()
        a = self.p.a_id.public_key
        self.assertEqual(self.p.got[b], [(a, b"one"), (a, b"two"), (a, b"three")])
        self.assertEqual((self.p.a.buffered_packets, self.p.a.buffered_bytes), (0, 0))

    def test_buffer_bound_per_key(self) -> None:
        """Beyond MAX_BUFFERED_PER_KEY the oldest payload gives way; the drop is counted and logged."""
        b = self.p.b_id.public_key
        self.p.net.filter = lambda w: None
        with capturedLogs() as events:
            for i in range(MAX_BUFFERED_PER_KEY + 2):
                self.p.a.send(b, b"%d" % i)
        self.p.net.flush()
        self.assertEqual(self.p.a.buffer_dropped, 2)
        logged = [e for e in events if "dropped {n} payloads" in e["log_format"]]
        self.assertEqual(len(logged), 1)  # aggregated: one line per 10 s
        self.p.net.filter = None
        self.p.a.send(b, b"last")
        self.p.net.flush()
        payloads = [p for _, p in self.p.got[b]]
        self.assertEqual(payloads, [b"%d" % i for i in range(3, MAX_BUFFERED_PER_KEY + 2)] + [b"last"])

    def test_buffer_bound_total(self) -> None:
        """Beyond MAX_BUFFERED_BYTES in all buffers, new payloads are refused (and counted)."""
        self.p.net.filter = lambda w: None
        big = bytes(MAX_BUFFERED_BYTES // 2)
        keys = [Identity(bytes([i]) * 32).public_key for i in (7, 8, 9)]
        for key in keys:
            self.p.a.send(key, big)
        self.assertEqual(self.p.a.buffered_bytes, 2 * len(big))
        self.assertEqual(self.p.a.buffer_dropped, 1)

    def test_buffer_init_reused(self) -> None:
        """Every buffered write re-sends the same init (same keys and seq) with a new E key."""
        b = self.p.b_id.public_key
        self.p.net.filter = lambda w: None
        self.p.a.send(b, b"one")
        self.clock.advance(3)
        self.p.a.send(b, b"two")
        sent = list(self.p.net.queue)
        self.p.net.flush()
        inits = [decode_init(d, x25519_private(self.p.b_id.private_key), s) for s, _, d in sent]
        self.assertEqual(inits[0], inits[1])
        self.assertNotEqual(sent[0][2][1:33], sent[1][2][1:33])

    def test_buffer_expires(self) -> None:
        """A buffer nobody answers is dropped 60 s after the last write."""
        b = self.p.b_id.public_key
        self.p.net.filter = lambda w: None
        self.p.a.send(b, b"one")
        self.clock.advance(30)
        self.p.a.send(b, b"two")
        self.clock.advance(59)
        self.assertTrue(self.p.a.has_buffer(b))
        self.clock.advance(1)
        self.assertFalse(self.p.a.has_buffer(b))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_both_ways(self) -> None:
        """After the handshake, many payloads flow both ways in order with rising nonces."""
        a, b = self.p.a_id.public_key, self.p.b_id.public_key
        self.p.a.send(b, b"hello")
        self.p.net.flush()
        for i in range(5):
            self.p.b.send(a, b"b%d" % i)
            self.p.a.send(b, b"a%d" % i)
            self.p.net.flush()
        self.assertEqual([p for _, p in self.p.got[a]], [b"b%d" % i for i in range(5)])
        self.assertEqual([p for _, p in self.p.got[b]], [b"hello"] + [b"a%d" % i for i in range(5)])
        kinds = [w[1] for w in self.p.wire()]
        self.assertEqual(kinds.count("init") + kinds.count("ack"), 3)

    def test_simultaneous_open(self) -> None:
        """Both sides sending first still ends with both payloads delivered."""
        a, b = self.p.a_id.public_key, self.p.b_id.public_key
        self.p.a.send(b, b"from a")
        self.p.b.send(a, b"from b")
        self.p.net.flush()
        self.assertEqual(self.p.got[b], [(a, b"from a")])
        self.assertEqual(self.p.got[a], [(b, b"from b")])

    def test_traffic_before_ack(self) -> None:
        """
        B opened first; A made its session from B's init and sends traffic, but A's ack is
        late. B (still setting up) keeps the traffic and sends nothing back (a throwaway init
        would replace B's keys at A in the same second); when the ack arrives both payloads are
        delivered, with no re-send from above, and the session works both ways.
        """
        a, b = self.p.a_id.public_key, self.p.b_id.public_key
        held: list[Any] = []
        self.p.net.filter = _holding_acks(a, held, first_only=True)
        self.p.b.send(a, b"from b")
        self.p.net.flush()
        self.assertEqual(len(held), 1)
        self.assertIsNone(self.p.b.session(a))
        self.p.a.send(b, b"from a")
        start = len(self.p.net.sent)
        self.p.net.flush()
        self.assertEqual([w[0] for w in self.p.net.sent[start:]], [a])  # B answered nothing
        self.assertEqual(self.p.got[a], [])
        self.p.net.queue.append(held[0])
        self.p.net.flush()
        self.assertEqual(self.p.got[a], [(b, b"from b")])
        self.assertEqual(self.p.got[b], [(a, b"from a")])
        self.p.a.send(b, b"again")
        self.p.b.send(a, b"again")
        self.p.net.flush()
        self.assertEqual(self.p.got[b][-1], (a, b"again"))
        self.assertEqual(self.p.got[a][-1], (b, b"again"))

    def test_early_traffic_bound(self) -> None:
        """At most MAX_EARLY_TRAFFIC packets wait for a late ack; the rest are counted drops."""
        a, b = self.p.a_id.public_key, self.p.b_id.public_key
        held: list[Any] = []
        self.p.net.filter = _holding_acks(a, held, first_only=False)
        self.p.b.send(a, b"from b")
        self.p.net.flush()
        for i in range(MAX_EARLY_TRAFFIC + 2):
            self.p.a.send(b, b"%d" % i)
        self.p.net.flush()
        self.assertEqual(self.p.b.buffer_dropped, 2)
        self.p.net.filter = None
        self.p.net.queue.append(held[0])
        self.p.net.flush()
        self.assertEqual(
            [m for _, m in self.p.got[b]], [b"%d" % i for i in range(MAX_EARLY_TRAFFIC)]
        )


def _holding_acks(sender: bytes, held: list[Any], first_only: bool) -> Any:
    """A network filter that keeps C{sender}'s acks (only its first, or all) in C{held}."""

    def hold(wire: Any) -> Any:
        if wire[0] == sender and wire[2][0] == TYPE_ACK and not (first_only and held):
            held.append(wire)
            return None
        return wire

    return hold


class RejectionTests(SynchronousTestCase):
    """Replayed, tampered and malformed packets."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.p = Pair(self.clock)
        self.addCleanup(self.p.stop)
        self.a, self.b = self.p.a_id.public_key, self.p.b_id.public_key
        self.p.a.send(self.b, b"first")
        self.p.net.flush()

    def _last_traffic(self) -> bytes:
        return [d for s, _, d in self.p.net.sent if s == self.a and d[0] == TYPE_TRAFFIC][-1]

    def test_replay(self) -> None:
        """A replayed traffic packet is dropped silently: no delivery, no reply."""
        self.p.a.send(self.b, b"second")
        self.p.net.flush()
        packet = self._last_traffic()
        before = len(self.p.net.sent)
        self.p.b.traffic_received(self.a, packet)
        self.p.net.flush()
        self.assertEqual([p for _, p in self.p.got[self.b]], [b"first", b"second"])
        self.assertEqual(len(self.p.net.sent), before)

    def test_older_nonce(self) -> None:
        """A packet with an older nonce (delivered late) is dropped."""
        self.p.net.filter = lambda w: None
        self.p.a.send(self.b, b"second")
        self.p.a.send(self.b, b"third")
        late, newer = [d for _, _, d in self.p.net.queue]
        self.p.net.flush()
        self.p.net.filter = None
        self.p.b.traffic_received(self.a, newer)
        self.p.b.traffic_received(self.a, late)
        self.assertEqual([p for _, p in self.p.got[self.b]], [b"first", b"third"])

    def test_tampered(self) -> None:
        """A traffic packet with a flipped ciphertext bit is not delivered; B sends an init."""
        self.p.net.filter = lambda w: None
        self.p.a.send(self.b, b"second")
        ((_, _, packet),) = list(self.p.net.queue)
        self.p.net.flush()
        self.p.net.filter = None
        bad = bytearray(packet)
        bad[-1] ^= 0x80
        start = len(self.p.net.sent)
        self.p.b.traffic_received(self.a, bytes(bad))
        self.assertEqual(self.p.got[self.b], [(self.a, b"first")])
        self.assertEqual([d[0] for _, _, d in self.p.net.queue], [TYPE_INIT])
        self.p.net.flush()
        # The genuine packet still decrypts afterwards (the resync did not break the session).
        self.p.b.traffic_received(self.a, packet)
        self.assertEqual(self.p.got[self.b][-1], (self.a, b"second"))
        self.assertGreater(len(self.p.net.sent), start)

    def test_malformed_traffic(self) -> None:
        """Short or bad-varint traffic is dropped without a reply or an exception."""
        for data in (b"\x03", b"\x03" + b"\xff" * 60):
            self.p.b.traffic_received(self.a, data)
        self.assertEqual(list(self.p.net.queue), [])

    def test_unknown_and_empty(self) -> None:
        """Empty data, dummy (0) and unknown types are ignored; the session stays up."""
        for data in (b"", b"\x00", b"\x07junk"):
            self.p.b.traffic_received(self.a, data)
        self.assertEqual(list(self.p.net.queue), [])
        self.assertIsNotNone(self.p.b.session(self.a))

    def test_bad_init(self) -> None:
        """An init that does not verify is dropped and no session is created."""
        c = Identity(bytes([7]) * 32)
        self.p.b.traffic_received(c.public_key, b"\x01" + bytes(192))
        self.assertIsNone(self.p.b.session(c.public_key))
        self.assertEqual(list(self.p.net.queue), [])

    def test_spoofed_init_sender(self) -> None:
        """An init signed by A but arriving with another source key is rejected."""
        c = Identity(bytes([7]) * 32)
        self.p.net.filter = lambda w: None
        self.p.a.stop()
        self.p.a.send(self.b, b"x")
        ((_, _, init),) = list(self.p.net.queue)
        self.p.net.flush()
        self.p.b.traffic_received(c.public_key, init)
        self.assertIsNone(self.p.b.session(c.public_key))

    def test_no_session_reply_is_throwaway_init(self) -> None:
        """Traffic from a key without a session gets an init with keySeq 0; nothing is stored."""
        c = Identity(bytes([7]) * 32)
        self.p.b.traffic_received(c.public_key, b"\x03" + bytes(60))
        ((source, dest, data),) = list(self.p.net.queue)
        self.assertEqual((source, dest, data[0]), (self.b, c.public_key, TYPE_INIT))
        init = decode_init(data, x25519_private(c.private_key), self.b)
        self.assertEqual((init.key_seq, init.seq), (0, int(T0)))
        self.assertIsNone(self.p.b.session(c.public_key))
        self.assertFalse(self.p.b.has_buffer(c.public_key))
        self.p.net.queue.clear()


class SameSecondTests(SynchronousTestCase):
    """The same-second rule of spec 4.5."""

    def test_same_second_ignored(self) -> None:
        """An init with the seq already accepted is ignored (no ack); a later second is accepted."""
        clock = Clock()
        clock.advance(T0)
        p = Pair(clock)
        self.addCleanup(p.stop)
        a, b = p.a_id.public_key, p.b_id.public_key
        p.a.send(b, b"x")
        p.net.flush()
        session = p.b.session(a)
        assert session is not None
        seq = session.remote_seq
        init = p.a.session(b).make_init()  # type: ignore[union-attr]
        self.assertEqual(init.seq, seq)
        p.a.send_init(b, TYPE_INIT, init)
        p.net.flush()
        self.assertEqual(p.wire(4), [("A", "init", 1, int(T0))])
        self.assertEqual(session.remote_seq, seq)
        clock.advance(1)
        p.a.send_init(b, TYPE_INIT, p.a.session(b).make_init())  # type: ignore[union-attr]
        p.net.flush()
        self.assertEqual(p.wire(5), [("A", "init", 1, int(T0) + 1), ("B", "ack", 3, int(T0) + 1)])


class RotationTests(SynchronousTestCase):
    """Traffic-driven key rotation under a clock."""

    def test_rotation_once_a_minute(self) -> None:
        """
        With traffic both ways the key sequences ratchet at most once per 60 s per side,
        and every payload still arrives.
        """
        clock = Clock()
        clock.advance(T0)
        p = Pair(clock)
        self.addCleanup(p.stop)
        a, b = p.a_id.public_key, p.b_id.public_key
        p.a.send(b, b"start")
        p.net.flush()
        seqs = []
        for i in range(20):  # 20 rounds, 10 s apart: 190 s
            p.a.send(b, b"a%d" % i)
            p.net.flush()
            p.b.send(a, b"b%d" % i)
            p.net.flush()
            sa, sb = p.a.session(b), p.b.session(a)
            assert sa is not None and sb is not None
            seqs.append((sa.local_key_seq, sb.local_key_seq))
            clock.advance(10)
        self.assertEqual(len(p.got[b]), 21)
        self.assertEqual(len(p.got[a]), 20)
        # A: 1 after the handshake; B: 1 + 1 (A's ack). Each side rotates on traffic from the
        # other's next key at most once per 60 s: over 190 s that is 3 or 4 more.
        # Each side ratchets on traffic from the other's next key, at most once per 60 s.
        for side in (0, 1):
            changes = [
                i * 10
                for i, (x, y) in enumerate(zip(seqs, seqs[1:], strict=False), 1)
                if y[side] != x[side]
            ]
            self.assertGreaterEqual(len(changes), 2)
            self.assertTrue(
                all(y - x > 60 for x, y in zip(changes, changes[1:], strict=False)), changes
            )
            steps = [y[side] - x[side] for x, y in zip(seqs, seqs[1:], strict=False)]
            self.assertTrue(all(s in (0, 1) for s in steps))

    def test_nonce_wrap_rotates(self) -> None:
        """
        When sendNonce wraps, the sender rotates its keys and sends nonce 0, which the receiver
        drops (it needs a nonce above 0, as Go does); the next packet gets through.
        """
        clock = Clock()
        clock.advance(T0)
        p = Pair(clock)
        self.addCleanup(p.stop)
        a, b = p.a_id.public_key, p.b_id.public_key
        p.a.send(b, b"start")
        p.net.flush()
        sa = p.a.session(b)
        assert sa is not None
        before = sa.local_key_seq
        sa.send_nonce = 2**64 - 1
        p.a.send(b, b"wrapped")
        p.net.flush()
        self.assertEqual(sa.local_key_seq, before + 1)
        self.assertEqual(sa.send_nonce, 0)
        self.assertEqual(p.got[b][-1], (a, b"start"))
        p.a.send(b, b"next")
        p.net.flush()
        self.assertEqual(p.got[b][-1], (a, b"next"))


class TimeoutTests(SynchronousTestCase):
    """The 60 s inactivity timer."""

    def test_session_expires(self) -> None:
        """A session idle for 60 s is deleted; activity pushes the deadline back."""
        clock = Clock()
        clock.advance(T0)
        p = Pair(clock)
        a, b = p.a_id.public_key, p.b_id.public_key
        p.a.send(b, b"x")
        p.net.flush()
        clock.advance(40)
        p.a.send(b, b"y")  # resets both timers (send on A, receive on B)
        p.net.flush()
        clock.advance(SESSION_TIMEOUT - 1)
        self.assertIsNotNone(p.a.session(b))
        self.assertIsNotNone(p.b.session(a))
        clock.advance(1)
        self.assertIsNone(p.a.session(b))
        self.assertIsNone(p.b.session(a))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop(self) -> None:
        """stop() forgets sessions and cancels every timer."""
        clock = Clock()
        clock.advance(T0)
        p = Pair(clock)
        p.a.send(p.b_id.public_key, b"x")
        p.net.flush()
        p.stop()
        self.assertIsNone(p.a.session(p.b_id.public_key))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_deliver_failure_logged(self) -> None:
        """An exception in the upper layer is logged; the session layer keeps working."""
        clock = Clock()
        clock.advance(T0)
        p = Pair(clock)
        self.addCleanup(p.stop)
        p.b.deliver = lambda k, d: 1 / 0  # type: ignore[assignment]
        p.a.send(p.b_id.public_key, b"x")
        p.net.flush()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertIsNotNone(p.b.session(p.a_id.public_key))


class ArbitraryInputTests(SynchronousTestCase):
    """Whatever a peer sends, the session layer neither raises nor delivers garbage."""

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300), st.booleans())
    def test_arbitrary_packets(self, data: bytes, with_session: bool) -> None:
        """Arbitrary packets from a key, with or without a session: no exception, no delivery."""
        clock = Clock()
        clock.advance(T0)
        p = Pair(clock)
        a, b = p.a_id.public_key, p.b_id.public_key
        if with_session:
            p.a.send(b, b"x")
            p.net.flush()
        before = list(p.got[b])
        p.b.traffic_received(a, data)
        p.net.queue.clear()
        self.assertEqual(p.got[b], before)
        p.stop()


class StaleSeqTests(SynchronousTestCase):
    """Spec 8.1 item 8: a restart with the peer holding a higher seq for us."""

    def _restarted(self) -> tuple[Pair, SessionManager, Clock]:
        clock = Clock()
        clock.advance(T0)
        p = Pair(clock)
        self.addCleanup(p.stop)
        p.a.send(p.b_id.public_key, b"before")
        p.net.flush()
        # A restarts with a clock 10 s behind: its inits carry a seq B has already passed.
        p.a.stop()
        behind = Clock()
        behind.advance(T0 - 10)
        a2 = SessionManager(p.a_id, p.net.routers[p.a_id.public_key], behind)
        got = p.got[p.a_id.public_key]
        a2.deliver = lambda k, d: got.append((k, d))
        p.net.routers[p.a_id.public_key].on_traffic = a2.traffic_received
        self.addCleanup(a2.stop)
        return p, a2, behind

    def test_heals_when_old_session_expires(self) -> None:
        """B ignores A's stale inits until its session with A times out, then accepts them."""
        p, a2, behind = self._restarted()
        b = p.b_id.public_key
        a2.send(b, b"lost")
        p.net.flush()
        self.assertEqual(p.got[b][-1][1], b"before")
        p.clock.advance(SESSION_TIMEOUT)  # B's session with A expires
        behind.advance(SESSION_TIMEOUT)
        a2.send(b, b"after")
        p.net.flush()
        self.assertEqual(p.got[b][-1], (p.a_id.public_key, b"after"))

    def test_peer_traffic_does_not_heal(self) -> None:
        """
        Traffic from B gets a throwaway init from A, but its seq comes from A's clock, which is
        behind, so B ignores it and sends no ack (as Go does): only B's session timeout heals.
        """
        p, a2, behind = self._restarted()
        a, b = p.a_id.public_key, p.b_id.public_key
        p.clock.advance(1)
        start = len(p.net.sent)
        p.b.send(a, b"ping")
        p.net.flush()
        kinds = [describe(w, p.idents)[0] for w in p.net.sent[start:]]
        self.assertEqual(kinds, ["traffic", "init"])
        self.assertIsNone(a2.session(b))
        self.assertEqual(p.got[a], [])
