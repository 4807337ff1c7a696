# -*- test-case-name: tests.test_link_core -*-
"""
Tests for L{axl.link.core} and L{axl.link.protocol}: the handshake, keepalive and timeouts of one
link (spec/yggdrasil-wire.md 2.3-2.7), alone and between two cores over in-memory TLS.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from zope.interface.verify import verifyObject

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from axl.encoding import uvarint_encode
from axl.interfaces import ILink, ILinkHandler
from axl.link.core import (
    HANDSHAKE_TIMEOUT,
    KEEPALIVE_DELAY,
    PEER_TIMEOUT,
    LinkCore,
    LinkState,
    NullLinkHandler,
    WriteBudget,
)
from axl.link.framing import PEER_MAX_MESSAGE_SIZE, encode_frame
from axl.link.meta import encode_meta, password_hash
from axl.link.testing import RecordingHandler, connect_cores, identity, make_core

KEEPALIVE = b"\x01\x01"
ME, PEER, OTHER = identity(1), identity(2), identity(3)


class Wire:
    """Stands in for the transport: collects written bytes and disconnect requests."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.disconnects: list[bool] = []

    def write(self, data: bytes) -> None:
        self.out += data

    def disconnect(self, abort: bool) -> None:
        self.disconnects.append(abort)

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data


def started(clock: Clock, **kw: object) -> tuple[LinkCore, Wire, RecordingHandler]:
    handler = RecordingHandler()
    core = make_core(ME, clock, handler, **kw)
    wire = Wire()
    core.connection_made(wire.write, wire.disconnect)
    return core, wire, handler


def up(clock: Clock, **kw: object) -> tuple[LinkCore, Wire, RecordingHandler]:
    """A core whose handshake with PEER is done and whose meta output was taken."""
    core, wire, handler = started(clock, **kw)
    core.data_received(encode_meta(PEER))
    assert core.state is LinkState.UP, core.last_error
    wire.take()
    return core, wire, handler


def blocked_links(
    clock: Clock, n: int, budget: WriteBudget, write_buffer_max: int
) -> list[tuple[LinkCore, Wire, RecordingHandler]]:
    """C{n} up cores sharing C{budget}, each told its transport's write buffer is full."""
    links = [up(clock, write_buffer_max=write_buffer_max, write_budget=budget) for _ in range(n)]
    for core, _, _ in links:
        core.writes_blocked()
    return links


def raw_meta(tlvs: bytes, ident=PEER, password: bytes = b"") -> bytes:
    body = tlvs + ident.sign(password_hash(ident.public_key, password))
    return b"meta" + struct.pack("!H", len(body)) + body


def tlvs(major: int = 0, minor: int = 5, key: bytes = PEER.public_key, prio: bytes = b"\x00"):
    return (
        struct.pack("!HHH", 0, 2, major) + struct.pack("!HHH", 1, 2, minor)
        + struct.pack("!HH", 2, len(key)) + key + struct.pack("!HH", 3, len(prio)) + prio
    )  # fmt: skip


class HandshakeTests(SynchronousTestCase):
    def test_sends_meta_at_once(self) -> None:
        """On connection the core writes its 123-byte meta without waiting for the peer's."""
        clock = Clock()
        core, wire, _ = started(clock, priority=4, password=b"pw")
        self.assertEqual(wire.take(), encode_meta(ME, 4, b"pw"))
        self.assertIs(core.state, LinkState.HANDSHAKING)
        self.assertEqual(core.tx_bytes, 123)

    def test_up_after_meta(self) -> None:
        """A valid meta brings the link up: key learned, priority max(local, remote), handler told."""
        clock = Clock()
        core, wire, handler = started(clock, priority=2)
        core.data_received(encode_meta(PEER, 5))
        self.assertIs(core.state, LinkState.UP)
        self.assertEqual((core.remote_key, core.priority), (PEER.public_key, 5))
        self.assertEqual(handler.events, [("up", core)])
        self.assertEqual(core.rx_bytes, 123)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_local_priority_wins_when_higher(self) -> None:
        """The effective priority is the larger of ours and the peer's."""
        core, _, _ = started(Clock(), priority=9)
        core.data_received(encode_meta(PEER, 1))
        self.assertEqual(core.priority, 9)

    def test_meta_split_and_frames_in_same_chunk(self) -> None:
        """The meta may arrive in pieces, and frames right behind it are delivered in order."""
        core, _, handler = started(Clock())
        data = encode_meta(PEER) + encode_frame(2, b"req") + encode_frame(5, b"bloom")
        core.data_received(data[:3])
        core.data_received(data[3:100])
        self.assertIs(core.state, LinkState.HANDSHAKING)
        core.data_received(data[100:])
        self.assertEqual(handler.kinds(), ["up", "frame", "frame"])
        self.assertEqual(handler.frames(), [(2, b"req"), (5, b"bloom")])

    def test_verify_ilink(self) -> None:
        """A handshaken core provides ILink; the handlers provide ILinkHandler."""
        core, _, _ = up(Clock())
        self.assertTrue(verifyObject(ILink, core))
        self.assertTrue(verifyObject(ILinkHandler, NullLinkHandler()))
        self.assertTrue(verifyObject(ILinkHandler, RecordingHandler()))

    def test_order_increases(self) -> None:
        """Each link that comes up gets a larger order than the previous ones."""
        clock = Clock()
        first, _, _ = up(clock)
        second, _, _ = up(clock)
        self.assertGreater(second.order, first.order)
        self.assertGreater(first.order, 0)

    def test_pinned_key(self) -> None:
        """With key= pins, only a pinned key is accepted; others drop the link before it is up."""
        core, _, _ = started(Clock(), pinned_keys=[OTHER.public_key, PEER.public_key])
        core.data_received(encode_meta(PEER))
        self.assertIs(core.state, LinkState.UP)
        core, wire, handler = started(Clock(), pinned_keys=[OTHER.public_key])
        core.data_received(encode_meta(PEER))
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn("pinned", core.last_error)
        self.assertEqual((wire.disconnects, handler.events), ([True], []))

    def test_allowed_keys_inbound_only(self) -> None:
        """AllowedPublicKeys refuses other keys on inbound links and is ignored outbound."""
        core, _, _ = started(Clock(), inbound=True, allowed_keys=[OTHER.public_key])
        core.data_received(encode_meta(PEER))
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn("AllowedPublicKeys", core.last_error)
        core, _, _ = started(Clock(), inbound=True, allowed_keys=[PEER.public_key])
        core.data_received(encode_meta(PEER))
        self.assertIs(core.state, LinkState.UP)
        core, _, _ = started(Clock(), inbound=False, allowed_keys=[OTHER.public_key])
        core.data_received(encode_meta(PEER))
        self.assertIs(core.state, LinkState.UP)

    def test_self_connection_refused(self) -> None:
        """A peer presenting our own key is refused and flagged is_self."""
        core, _, handler = started(Clock())
        core.data_received(encode_meta(ME))
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertTrue(core.is_self)
        self.assertEqual(handler.events, [])

    def test_password(self) -> None:
        """Matching passwords bring the link up; a different password drops it."""
        core, _, _ = started(Clock(), password=b"secret")
        core.data_received(encode_meta(PEER, 0, b"secret"))
        self.assertIs(core.state, LinkState.UP)
        core, _, _ = started(Clock(), password=b"secret")
        core.data_received(encode_meta(PEER))
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn("password", core.last_error)


class BadInputTests(SynchronousTestCase):
    """Each bad input closes (aborts) this link, logs a warning, and leaves other links alone."""

    def assertDropped(self, data: bytes, why: str, after_up: bool = False) -> None:
        clock = Clock()
        bystander, bwire, bhandler = up(clock)
        if after_up:
            core, wire, handler = up(clock)
        else:
            core, wire, handler = started(clock)
        with capturedLogs() as events:
            core.data_received(data)
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn(why, core.last_error)
        self.assertEqual(wire.disconnects, [True])
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["reason"], core.last_error)
        self.assertEqual(handler.kinds(), ["up", "down"] if after_up else [])
        # The other link still works.
        self.assertIs(bystander.state, LinkState.UP)
        bystander.data_received(encode_frame(2, b"x"))
        self.assertEqual(bhandler.frames(), [(2, b"x")])
        self.assertEqual(bwire.disconnects, [])
        # Nothing more is accepted or scheduled for the dropped link.
        core.data_received(encode_frame(2, b"late"))
        self.assertNotIn((2, b"late"), handler.frames())
        clock.advance(KEEPALIVE_DELAY)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_wrong_preamble(self) -> None:
        """A peer that is not Yggdrasil (no "meta" preamble)."""
        self.assertDropped(b"GET / HTTP/1.1\r\n", "not Yggdrasil")

    def test_wrong_version(self) -> None:
        """A correctly signed meta for version 0.4."""
        self.assertDropped(raw_meta(tlvs(minor=4)), "incompatible version")

    def test_short_key_field(self) -> None:
        """A key TLV of 31 bytes."""
        self.assertDropped(raw_meta(tlvs(key=PEER.public_key[:31])), "has length 31")

    def test_long_priority_field(self) -> None:
        """A priority TLV of 2 bytes."""
        self.assertDropped(raw_meta(tlvs(prio=b"\x00\x00")), "has length 2")

    def test_short_length(self) -> None:
        """A meta length under 64."""
        self.assertDropped(b"meta\x00\x10", "invalid meta length")

    def test_bad_signature(self) -> None:
        """A meta signed by another key."""
        self.assertDropped(raw_meta(tlvs(), ident=OTHER), "password does not match")

    def test_frame_over_limit(self) -> None:
        """A frame declaring 131071 bytes, dropped as soon as the prefix arrives."""
        self.assertDropped(uvarint_encode(PEER_MAX_MESSAGE_SIZE + 1), "exceeds the limit",
                           after_up=True)  # fmt: skip

    def test_uvarint_too_long(self) -> None:
        """A frame length prefix of 11 bytes."""
        self.assertDropped(b"\x80" * 10 + b"\x00", "uvarint", after_up=True)

    def test_empty_frame(self) -> None:
        """A frame of length 0."""
        self.assertDropped(b"\x00", "empty frame", after_up=True)

    def test_unknown_frame_type(self) -> None:
        """A frame of type 10 (ironwood's ErrUnrecognizedMessage)."""
        self.assertDropped(encode_frame(10, b""), "unrecognised frame type 10", after_up=True)

    def test_handler_protocol_error(self) -> None:
        """A ProtocolError from the router drops only that link."""
        clock = Clock()
        other, _, other_handler = up(clock)
        handler = RecordingHandler(reject_types=(4,))
        core = make_core(ME, clock, handler)
        wire = Wire()
        core.connection_made(wire.write, wire.disconnect)
        core.data_received(encode_meta(PEER) + encode_frame(4, b"bad") + encode_frame(5, b"x"))
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn("rejected by the router", core.last_error)
        self.assertEqual(handler.kinds(), ["up", "frame", "down"])
        self.assertIs(other.state, LinkState.UP)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_handler_bug(self) -> None:
        """An unexpected exception in the handler is logged as a failure and drops the link."""
        clock = Clock()
        core, wire, handler = up(clock)

        def boom(link: object, t: int, p: bytes) -> None:
            1 / 0

        handler.frame_received = boom  # type: ignore[method-assign]
        core.data_received(encode_frame(2, b""))
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class TimerTests(SynchronousTestCase):
    """Spec 2.3 (6 s handshake deadline) and 2.7 (keepalive 1 s, peer timeout 3 s)."""

    def test_silent_peer_times_out(self) -> None:
        """A peer that sends nothing after connecting is dropped at exactly 6 s."""
        clock = Clock()
        core, wire, _ = started(clock)
        clock.advance(HANDSHAKE_TIMEOUT - 0.001)
        self.assertIs(core.state, LinkState.HANDSHAKING)
        clock.advance(0.001)
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn("handshake not finished within 6 s", core.last_error)
        self.assertEqual(wire.disconnects, [True])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_one_byte_per_second(self) -> None:
        """A peer dribbling its (valid) meta at 1 byte/s is still dropped at 6 s."""
        clock = Clock()
        core, _, handler = started(clock)
        meta = encode_meta(PEER)
        for i in range(6):
            core.data_received(meta[i : i + 1])
            clock.advance(1)
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertEqual(core.rx_bytes, 6)
        self.assertEqual(handler.events, [])
        self.assertEqual(clock.seconds(), HANDSHAKE_TIMEOUT)

    def test_keepalive_after_frame(self) -> None:
        """After a type >= 2 frame arrives, 01 01 goes out 1 s later (not before)."""
        clock = Clock()
        core, wire, _ = up(clock)
        core.data_received(encode_frame(2, b"sigreq"))
        clock.advance(KEEPALIVE_DELAY - 0.001)
        self.assertEqual(wire.take(), b"")
        clock.advance(0.001)
        self.assertEqual(wire.take(), KEEPALIVE)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertIs(core.state, LinkState.UP)

    def test_one_keepalive_for_several_frames(self) -> None:
        """Several frames within the second lead to a single keepalive."""
        clock = Clock()
        core, wire, _ = up(clock)
        core.data_received(encode_frame(2, b"a"))
        clock.advance(0.5)
        core.data_received(encode_frame(5, b"b") + encode_frame(9, b"c"))
        clock.advance(0.5)
        self.assertEqual(wire.take(), KEEPALIVE)
        clock.advance(5)
        self.assertEqual(wire.take(), b"")

    def test_reply_cancels_keepalive(self) -> None:
        """If we send any frame before the second is up, no keepalive is sent."""
        clock = Clock()
        core, wire, _ = up(clock)
        core.data_received(encode_frame(2, b"sigreq"))
        clock.advance(0.5)
        core.send_frame(3, b"sigres")
        clock.advance(0.5)
        self.assertEqual(wire.take(), encode_frame(3, b"sigres"))

    def test_keepalive_needs_no_reply(self) -> None:
        """Received keepalives and dummies (types 1 and 0) trigger nothing."""
        clock = Clock()
        core, wire, handler = up(clock)
        core.data_received(KEEPALIVE + encode_frame(0, b"pad"))
        clock.advance(10)
        self.assertEqual((wire.take(), handler.frames()), (b"", []))
        self.assertIs(core.state, LinkState.UP)

    def test_silence_after_our_frame(self) -> None:
        """After we send a type >= 2 frame, 3 s without any frame from the peer drops the link."""
        clock = Clock()
        core, wire, handler = up(clock)
        core.send_frame(2, b"sigreq")
        clock.advance(PEER_TIMEOUT - 0.001)
        self.assertIs(core.state, LinkState.UP)
        clock.advance(0.001)
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn("sent nothing for 3 s", core.last_error)
        self.assertEqual(handler.kinds(), ["up", "down"])

    def test_any_frame_clears_deadline(self) -> None:
        """A keepalive from the peer before the 3 s clears the read deadline."""
        clock = Clock()
        core, _, _ = up(clock)
        core.send_frame(2, b"sigreq")
        clock.advance(2.9)
        core.data_received(KEEPALIVE)
        clock.advance(10)
        self.assertIs(core.state, LinkState.UP)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_partial_frame_does_not_clear_deadline(self) -> None:
        """Half a frame is not a frame: the deadline still fires."""
        clock = Clock()
        core, _, _ = up(clock)
        core.send_frame(2, b"sigreq")
        core.data_received(encode_frame(5, b"bloom")[:3])
        clock.advance(PEER_TIMEOUT)
        self.assertIs(core.state, LinkState.CLOSED)

    def test_keepalive_sends_arm_no_deadline(self) -> None:
        """Sending keepalives (or dummies) arms no read deadline: an idle link stays up."""
        clock = Clock()
        core, _, _ = up(clock)
        core.send_frame(1)
        core.send_frame(0, b"")
        clock.advance(60)
        self.assertIs(core.state, LinkState.UP)

    def test_oversized_send_dropped(self) -> None:
        """An outgoing frame over the limit is dropped and logged; the link stays up."""
        clock = Clock()
        core, wire, _ = up(clock)
        with capturedLogs() as events:
            core.send_frame(9, bytes(PEER_MAX_MESSAGE_SIZE))
        self.assertEqual(wire.take(), b"")
        self.assertIs(core.state, LinkState.UP)
        self.assertTrue(any("dropping an outgoing" in e["log_format"] for e in events))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_send_when_not_up_ignored(self) -> None:
        """send_frame before the handshake or after the close writes nothing."""
        clock = Clock()
        core, wire, _ = started(clock)
        wire.take()
        core.send_frame(2, b"early")
        self.assertEqual(wire.take(), b"")
        core.close("done")
        core.send_frame(2, b"late")
        self.assertEqual(wire.take(), b"")
        self.assertEqual(wire.disconnects, [False])

    def test_close_before_connection(self) -> None:
        """Closing a core that never got its connection just marks it closed."""
        core = make_core(ME, Clock())
        core.close("stopping")
        self.assertIs(core.state, LinkState.CLOSED)

    def test_counters(self) -> None:
        """rx/tx byte counters count every byte, the 123-byte metas included."""
        clock = Clock()
        core, _, _ = started(clock)
        core.data_received(encode_meta(PEER) + KEEPALIVE)
        core.send_frame(2, b"abc")
        self.assertEqual((core.rx_bytes, core.tx_bytes), (125, 123 + 5))
        clock.advance(2)
        self.assertEqual(core.uptime(), 2.0)


class MemoryTLSTests(SynchronousTestCase):
    """Two link cores over real TLS 1.3 in memory (TLSMemoryBIOFactory + iosim)."""

    def pair(self, clock: Clock, client_kw: dict | None = None, server_kw: dict | None = None):
        client = make_core(ME, clock, RecordingHandler(), **(client_kw or {}))
        server = make_core(PEER, clock, RecordingHandler(), inbound=True, **(server_kw or {}))
        link = connect_cores(client, server, clock, client_identity=ME, server_identity=PEER)
        link.pump.flush()
        return link

    def test_handshake(self) -> None:
        """Both sides come up and learn each other's key; frames flow both ways."""
        clock = Clock()
        link = self.pair(clock, {"priority": 1}, {"priority": 3})
        c, s = link.client, link.server
        self.assertEqual((c.state, s.state), (LinkState.UP, LinkState.UP))
        self.assertEqual((c.remote_key, s.remote_key), (PEER.public_key, ME.public_key))
        self.assertEqual((c.priority, s.priority), (3, 3))
        c.send_frame(2, b"ping")
        s.send_frame(4, b"pong")
        link.pump.flush()
        self.assertEqual(s.handler.frames(), [(2, b"ping")])
        self.assertEqual(c.handler.frames(), [(4, b"pong")])

    def test_tls13(self) -> None:
        """The negotiated protocol is TLS 1.3, with no ALPN."""
        link = self.pair(Clock())
        conn = link.client_proto.transport._tlsConnection
        self.assertEqual(conn.get_protocol_version_name(), "TLSv1.3")
        self.assertFalse(conn.get_alpn_proto_negotiated())

    def test_wrong_pin_refused(self) -> None:
        """A key= pin that does not match: the dialler refuses, the listener sees it go down."""
        clock = Clock()
        link = self.pair(clock, {"pinned_keys": [OTHER.public_key]})
        self.assertIs(link.client.state, LinkState.CLOSED)
        self.assertIn("pinned", link.client.last_error)
        self.assertEqual(link.client.handler.events, [])
        self.assertIs(link.server.state, LinkState.CLOSED)
        self.assertEqual(link.server.handler.kinds(), ["up", "down"])

    def test_password_mismatch_refused(self) -> None:
        """Different passwords: neither side comes up."""
        clock = Clock()
        link = self.pair(clock, {"password": b"one"}, {"password": b"two"})
        self.assertIs(link.client.state, LinkState.CLOSED)
        self.assertIs(link.server.state, LinkState.CLOSED)
        self.assertEqual(link.client.handler.events + link.server.handler.events, [])

    def test_password_match(self) -> None:
        """The same password on both sides: the link comes up."""
        link = self.pair(Clock(), {"password": b"same"}, {"password": b"same"})
        self.assertEqual((link.client.state, link.server.state), (LinkState.UP, LinkState.UP))

    def test_keepalive_timing(self) -> None:
        """Over TLS: a frame to a silent router is answered by a keepalive after 1 s, which
        clears the sender's 3 s deadline, so the link stays up indefinitely."""
        clock = Clock()
        link = self.pair(clock)
        c, s = link.client, link.server
        rx_before = c.rx_bytes
        c.send_frame(2, b"sigreq")
        link.pump.flush()
        self.assertEqual(c.rx_bytes, rx_before)
        clock.advance(KEEPALIVE_DELAY)
        link.pump.flush()
        self.assertEqual(c.rx_bytes, rx_before + 2)
        clock.advance(PEER_TIMEOUT * 10)
        link.pump.flush()
        self.assertEqual((c.state, s.state), (LinkState.UP, LinkState.UP))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_close_propagates(self) -> None:
        """Closing one side brings the other down too, each handler told once."""
        clock = Clock()
        link = self.pair(clock)
        link.client.close("bye")
        link.pump.flush()
        self.assertEqual(link.client.handler.kinds(), ["up", "down"])
        self.assertEqual(link.server.handler.kinds(), ["up", "down"])
        self.assertIs(link.server.state, LinkState.CLOSED)

    def test_plain_tcp(self) -> None:
        """The same cores work without TLS (tcp://)."""
        clock = Clock()
        client = make_core(ME, clock)
        server = make_core(PEER, clock, inbound=True)
        link = connect_cores(client, server, clock, tls=False)
        link.pump.flush()
        self.assertEqual((client.remote_key, server.remote_key), (PEER.public_key, ME.public_key))


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=12), st.booleans())
    def test_any_input_is_contained(self, data: bytes, cuts: list[int], after_up: bool) -> None:
        """
        Whatever bytes a peer sends, in whatever pieces, data_received never raises: the link
        is still handshaking, up, or closed with an abort and a reason.
        """
        clock = Clock()
        core, wire, _ = up(clock) if after_up else started(clock)
        pos = 0
        for cut in cuts + [len(data)]:
            core.data_received(data[pos : pos + cut])
            pos += cut
        if core.state is LinkState.CLOSED:
            self.assertEqual(wire.disconnects, [True])
            self.assertTrue(core.last_error)
        else:
            self.assertEqual(wire.disconnects, [])
            self.assertIn(core.state, (LinkState.HANDSHAKING, LinkState.UP))


class FlowControlTests(SynchronousTestCase):
    """Issue 12: a link stops reading while its write buffer is full, and bounds what it queues."""

    def test_traffic_dropped_past_the_bound(self) -> None:
        """While writes are blocked, Traffic frames past C{write_buffer_max} bytes are dropped."""
        clock = Clock()
        core, wire, _ = up(clock, write_buffer_max=10_000)
        core.writes_blocked()
        for _ in range(100):
            core.send_frame(9, b"x" * 1000)
        self.assertLessEqual(len(wire.take()), 10_000)
        self.assertGreater(core.dropped_frames, 80)
        self.assertIs(core.state, LinkState.UP)
        core.writes_unblocked()
        core.send_frame(9, b"x" * 1000)
        self.assertGreater(len(wire.take()), 1000)

    def test_peer_not_reading_dropped(self) -> None:
        """Other frames past twice the bound while blocked drop the link: the peer is not reading."""
        clock = Clock()
        core, wire, _ = up(clock, write_buffer_max=10_000)
        core.writes_blocked()
        for _ in range(30):
            core.send_frame(4, b"a" * 1000)
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn("not reading", core.last_error)
        self.assertLessEqual(len(wire.take()), 20_000)

    def test_shared_budget_caps_the_sum(self) -> None:
        """
        Ten blocked links, each under its own bound, stop taking Traffic once their waiting
        bytes together reach the shared budget; the budget counts what each link holds and
        gets it back when the link drains or closes.
        """
        budget = WriteBudget(30_000)
        links = blocked_links(Clock(), 10, budget, write_buffer_max=10_000)
        for core, _, _ in links:
            for _ in range(9):
                core.send_frame(9, b"x" * 1000)
        written = sum(len(wire.take()) for _, wire, _ in links)
        self.assertLessEqual(written, 30_000)
        self.assertGreater(written, 27_000)
        self.assertEqual(budget.used, sum(core.blocked_bytes for core, _, _ in links))
        self.assertEqual(budget.used, written)
        self.assertEqual([core.blocked_bytes < 10_000 for core, _, _ in links], [True] * 10)
        self.assertGreater(sum(core.dropped_frames for core, _, _ in links), 55)
        self.assertEqual({core.state for core, _, _ in links}, {LinkState.UP})
        first, second = links[0][0], links[1][0]
        held = first.blocked_bytes + second.blocked_bytes
        first.writes_unblocked()
        second.close("test")
        self.assertEqual(budget.used, written - held)
        links[5][0].send_frame(9, b"y" * 1000)  # room again, on a link still blocked
        self.assertEqual(len(links[5][1].take()), 1003)

    def test_budget_must_be_positive(self) -> None:
        """A budget of 0 bytes is refused (every link would drop every Traffic frame)."""
        self.assertRaises(ValueError, WriteBudget, 0)
        self.assertEqual(WriteBudget(1).limit, 1)

    def test_shared_budget_drops_a_link_past_twice_it(self) -> None:
        """
        Frames other than Traffic go on past the budget, but the link whose frame would take
        the total past twice the budget is dropped (and gives its bytes back).
        """
        budget = WriteBudget(10_000)
        links = blocked_links(Clock(), 3, budget, write_buffer_max=100_000)
        for _ in range(8):
            for core, _, _ in links:
                core.send_frame(4, b"a" * 1000)
        states = [core.state for core, _, _ in links]
        self.assertEqual(states.count(LinkState.CLOSED), 1, states)
        [dropped] = [core for core, _, _ in links if core.state is LinkState.CLOSED]
        self.assertIn("links have", dropped.last_error)
        self.assertLessEqual(budget.used, 20_000)
        self.assertEqual(budget.used, sum(core.blocked_bytes for core, _, _ in links))
        self.assertEqual(dropped.blocked_bytes, 0)

    def test_protocol_stops_reading_when_paused(self) -> None:
        """L{LinkProtocol} is its transport's producer: paused, it pauses reading the transport."""
        from twisted.internet.testing import StringTransport

        from axl.link.protocol import LinkProtocol

        clock = Clock()
        core = make_core(ME, clock, RecordingHandler())
        proto = LinkProtocol(core)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertIsNone(transport.producer)  # not before the first bytes (TLS handshakes first)
        proto.dataReceived(encode_meta(PEER))
        self.assertIs(transport.producer, proto)
        transport.producer.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        for _ in range(20):  # 2 MB: over the 1 MiB bound, the rest is dropped
            core.send_frame(9, b"x" * 100_000)
        self.assertEqual(core.dropped_frames, 10)
        transport.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        core.close("done")
        self.assertIsNone(transport.producer)
        clock.advance(10)

    def test_flooding_handler_marks_the_link(self) -> None:
        """A handler's L{PeerFlooding} drops the link and marks it C{flooded}."""
        from axl.errors import PeerFlooding

        class Flooded(RecordingHandler):
            def frame_received(self, link, frame_type, payload):  # type: ignore[no-untyped-def]
                raise PeerFlooding("too many")

        clock = Clock()
        core = make_core(ME, clock, Flooded())
        wire = Wire()
        core.connection_made(wire.write, wire.disconnect)
        core.data_received(encode_meta(PEER) + encode_frame(2, b"\x00"))
        self.assertTrue(core.flooded)
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertEqual(wire.disconnects, [True])
