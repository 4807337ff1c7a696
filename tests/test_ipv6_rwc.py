# -*- test-case-name: tests.test_ipv6_rwc -*-
"""Tests for L{axl.ipv6.rwc}: the ipv6rwc carriage of spec/yggdrasil-wire.md section 5.3."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from axl.crypto.address import key_for_addr, key_for_subnet
from axl.crypto.keys import Identity
from axl.interfaces import IIPv6Layer, ISessions
from axl.ipv6.icmpv6 import decode_packet_too_big, packet_too_big
from axl.ipv6.packet import build_packet, upper_layer_checksum
from axl.ipv6.rwc import KEY_TIMEOUT, MAX_PENDING_BYTES, MAX_PENDING_PER_DEST, IPv6Layer

US = Identity(bytes(32))
THEM = Identity(bytes(range(1, 33)))
OTHER = Identity(bytes([0x42]) * 32)


@implementer(ISessions)
class FakeSessions:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, dest_key: bytes, plaintext: bytes) -> None:
        self.sent.append((dest_key, plaintext))


class FakeLookups:
    def __init__(self) -> None:
        self.lookups: list[bytes] = []

    def send_lookup(self, partial_key: bytes) -> None:
        self.lookups.append(partial_key)


def in_subnet(ident: Identity, host: int = 1) -> bytes:
    return ident.subnet + host.to_bytes(8, "big")


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1.7e9)
        self.sessions = FakeSessions()
        self.router = FakeLookups()
        self.layer = IPv6Layer(US.public_key, self.sessions, self.router, self.clock)
        self.addCleanup(self.layer.stop)
        self.got: list[tuple[bytes, bytes]] = []
        self.layer.register_protocol(17, lambda k, p: self.got.append((k, p)))
        self.ptbs: list[tuple[bytes, int, bytes]] = []
        self.layer.register_ptb_handler(lambda k, m, o: self.ptbs.append((k, m, o)))


class OutgoingTests(Base):
    """Packets from our stack into the overlay."""

    def test_interface(self) -> None:
        """IPv6Layer provides IIPv6Layer with our address and the core MTU."""
        self.assertTrue(verifyObject(IIPv6Layer, self.layer))
        self.assertEqual((self.layer.address, self.layer.mtu), (US.address, 65535))

    def test_lookup_then_notify(self) -> None:
        """An unknown address is looked up by its partial key; the notify flushes the packet."""
        packet = build_packet(US.address, THEM.address, 17, b"hi")
        self.layer.send_ipv6(packet)
        self.assertEqual(self.router.lookups, [key_for_addr(THEM.address)])
        self.assertEqual(self.sessions.sent, [])
        self.layer.path_notify(THEM.public_key)
        self.assertEqual(self.sessions.sent, [(THEM.public_key, b"\x01" + packet)])
        self.layer.send_ipv6(packet)
        self.assertEqual(len(self.router.lookups), 1)
        self.assertEqual(len(self.sessions.sent), 2)

    def test_buffer_in_order(self) -> None:
        """Every packet waits for the key and goes out in order (Go keeps only the newest)."""
        packets = [build_packet(US.address, THEM.address, 17, b"%d" % i) for i in range(3)]
        for packet in packets:
            self.layer.send_ipv6(packet)
        self.assertEqual(self.layer.pending_packets, 3)
        self.layer.path_notify(THEM.public_key)
        self.assertEqual(self.sessions.sent, [(THEM.public_key, b"\x01" + p) for p in packets])
        self.assertEqual((self.layer.pending_packets, self.layer.pending_bytes), (0, 0))

    def test_buffer_bound_per_destination(self) -> None:
        """Beyond MAX_PENDING_PER_DEST the oldest packet gives way; counted and logged once."""
        packets = [
            build_packet(US.address, THEM.address, 17, b"%d" % i)
            for i in range(MAX_PENDING_PER_DEST + 2)
        ]
        with capturedLogs() as events:
            for packet in packets:
                self.layer.send_ipv6(packet)
        self.assertEqual(self.layer.pending_dropped, 2)
        self.assertEqual(len([e for e in events if "dropped {n} packets" in e["log_format"]]), 1)
        self.layer.path_notify(THEM.public_key)
        self.assertEqual([p for _, p in self.sessions.sent], [b"\x01" + p for p in packets[2:]])

    def test_buffer_bound_total(self) -> None:
        """Beyond MAX_PENDING_BYTES in all, new packets are refused (the held ones stay)."""
        payload = bytes(60000)
        n = MAX_PENDING_BYTES // (len(payload) + 48) + 1
        dests = [Identity(bytes([i + 1]) * 32).address for i in range(n)]
        for dst in dests:
            self.layer.send_ipv6(build_packet(US.address, dst, 17, payload))
        self.assertEqual(self.layer.pending_dropped, 1)
        self.assertLessEqual(self.layer.pending_bytes, MAX_PENDING_BYTES)
        self.assertEqual(self.layer.pending_packets, n - 1)

    def test_buffer_expires(self) -> None:
        """A packet waiting 2 minutes is dropped (and counted)."""
        self.layer.send_ipv6(build_packet(US.address, THEM.address, 17, b"1"))
        self.clock.advance(KEY_TIMEOUT)
        self.layer.path_notify(THEM.public_key)
        self.assertEqual(self.sessions.sent, [])
        self.assertEqual(self.layer.pending_packets, 0)

    def test_subnet(self) -> None:
        """A 300::/8 destination is looked up by its subnet's key and flushed on notify."""
        dst = in_subnet(THEM, 7)
        packet = build_packet(US.address, dst, 17, b"x")
        self.layer.send_ipv6(packet)
        self.assertEqual(self.router.lookups, [key_for_subnet(THEM.subnet)])
        self.layer.path_notify(THEM.public_key)
        self.assertEqual(self.sessions.sent, [(THEM.public_key, b"\x01" + packet)])

    def test_key_expiry_and_refresh(self) -> None:
        """A learnt key lasts 2 minutes after its last use, then needs a new lookup."""
        self.layer.path_notify(THEM.public_key)
        packet = build_packet(US.address, THEM.address, 17, b"x")
        self.clock.advance(KEY_TIMEOUT - 1)
        self.layer.send_ipv6(packet)  # refreshes
        self.clock.advance(KEY_TIMEOUT - 1)
        self.layer.send_ipv6(packet)
        self.assertEqual((len(self.sessions.sent), self.router.lookups), (2, []))
        self.clock.advance(KEY_TIMEOUT)
        self.layer.send_ipv6(packet)
        self.assertEqual(self.router.lookups, [key_for_addr(THEM.address)])

    def test_source_checks(self) -> None:
        """Our address and our subnet are valid sources; anything else is dropped."""
        self.layer.path_notify(THEM.public_key)
        self.layer.send_ipv6(build_packet(in_subnet(US), THEM.address, 17, b"a"))
        self.layer.send_ipv6(build_packet(OTHER.address, THEM.address, 17, b"b"))
        self.layer.send_ipv6(
            build_packet(bytes.fromhex("fe80" + "00" * 13 + "01"), THEM.address, 17, b"c")
        )
        self.assertEqual(len(self.sessions.sent), 1)

    def test_outside_overlay(self) -> None:
        """A destination outside 200::/7 is dropped without a lookup; so are non-IPv6 packets."""
        self.layer.send_ipv6(build_packet(US.address, bytes.fromhex("2001" + "00" * 14), 17, b"x"))
        self.layer.send_ipv6(b"\x45" + bytes(59))
        self.layer.send_ipv6(bytes(10))
        self.assertEqual((self.sessions.sent, self.router.lookups), ([], []))

    def test_too_big_outgoing(self) -> None:
        """More than 65535 bytes is not sent: our PTB handlers get (our key, 65535, 512 bytes)."""
        packet = build_packet(US.address, THEM.address, 17, bytes(65535 - 40)) + b"!"
        self.layer.send_ipv6(packet)
        self.assertEqual(self.sessions.sent, [])
        self.assertEqual(self.ptbs, [(US.public_key, 65535, packet[:512])])

    def test_mtu_exact(self) -> None:
        """A packet of exactly 65535 bytes is sent."""
        self.layer.path_notify(THEM.public_key)
        self.layer.send_ipv6(build_packet(US.address, THEM.address, 17, bytes(65535 - 40)))
        self.assertEqual(len(self.sessions.sent[0][1]), 65536)

    def test_loopback(self) -> None:
        """A packet to our own address is delivered locally with our key."""
        packet = build_packet(US.address, US.address, 17, b"me")
        self.layer.send_ipv6(packet)
        self.assertEqual(self.got, [(US.public_key, packet)])
        self.assertEqual(self.sessions.sent, [])

    def test_timers_stop(self) -> None:
        """The sweeper runs only while there are keys or packets; stop() cancels it."""
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.layer.path_notify(THEM.public_key)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(KEY_TIMEOUT * 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(self.layer.known_key(THEM.address))


class IncomingTests(Base):
    """Packets from the overlay to our stack."""

    def test_deliver_with_full_key(self) -> None:
        """A valid packet goes to the handler of its next header with the sender's full key."""
        packet = build_packet(THEM.address, US.address, 17, b"hello")
        self.layer.packet_received(THEM.public_key, packet)
        self.assertEqual(self.got, [(THEM.public_key, packet)])
        # and the key is learnt: a reply needs no lookup
        self.assertEqual(self.layer.known_key(THEM.address), THEM.public_key)
        self.layer.send_ipv6(build_packet(US.address, THEM.address, 17, b"re"))
        self.assertEqual(self.router.lookups, [])

    def test_packet_from_key_flushes_held(self) -> None:
        """
        Packets kept for an address go out, in order, as soon as a packet from its key
        arrives (we may never find its path ourselves), before the handler sees that packet.
        """
        held = [build_packet(US.address, THEM.address, 17, b"%d" % i) for i in range(2)]
        held.append(build_packet(US.address, in_subnet(THEM, 3), 17, b"sub"))
        for packet in held:
            self.layer.send_ipv6(packet)
        self.assertEqual(self.sessions.sent, [])
        order: list[str] = []
        sent = self.sessions.sent
        self.layer.register_protocol(17, lambda k, p: order.append(f"got {len(sent)}"))
        hi = build_packet(THEM.address, US.address, 17, b"hi")
        self.layer.packet_received(THEM.public_key, hi)
        self.assertEqual(self.sessions.sent, [(THEM.public_key, b"\x01" + p) for p in held])
        self.assertEqual(order, ["got 3"])
        self.assertEqual((self.layer.pending_packets, self.layer.pending_bytes), (0, 0))

    def test_subnet_source_and_dest(self) -> None:
        """Sources in the sender's /64 and destinations in our /64 are accepted."""
        packet = build_packet(in_subnet(THEM, 5), in_subnet(US, 9), 17, b"x")
        self.layer.packet_received(THEM.public_key, packet)
        self.assertEqual(self.got, [(THEM.public_key, packet)])

    def test_spoofed_source(self) -> None:
        """A source address that is not the encrypting key's is dropped (anti-spoofing)."""
        self.layer.packet_received(
            THEM.public_key, build_packet(OTHER.address, US.address, 17, b"x")
        )
        self.layer.packet_received(
            THEM.public_key, build_packet(in_subnet(OTHER), US.address, 17, b"x")
        )
        self.assertEqual(self.got, [])

    def test_not_for_us(self) -> None:
        """A packet for another destination is dropped and the key is not learnt."""
        self.layer.packet_received(
            THEM.public_key, build_packet(THEM.address, OTHER.address, 17, b"x")
        )
        self.assertEqual(self.got, [])
        self.assertIsNone(self.layer.known_key(THEM.address))

    def test_malformed(self) -> None:
        """Short and non-IPv6 packets are dropped; unregistered protocols are dropped."""
        self.layer.packet_received(THEM.public_key, bytes(39))
        self.layer.packet_received(THEM.public_key, b"\x45" + bytes(59))
        self.layer.packet_received(THEM.public_key, build_packet(THEM.address, US.address, 6, b"x"))
        self.assertEqual(self.got, [])

    def test_too_big_incoming(self) -> None:
        """A packet over 65535 bytes is answered with a PTB (quoting 512 bytes) to its sender."""
        packet = build_packet(THEM.address, US.address, 17, bytes(60000)) + bytes(10000)
        self.layer.path_notify(THEM.public_key)
        self.layer.packet_received(THEM.public_key, packet)
        self.assertEqual(self.got, [])
        ((dest, plaintext),) = self.sessions.sent
        self.assertEqual((dest, plaintext[0]), (THEM.public_key, 1))
        self.assertEqual(plaintext[1:], packet_too_big(packet, 65535))

    def test_ptb_from_network(self) -> None:
        """A PTB about one of our packets reaches the PTB handlers with the full sender key."""
        ours = build_packet(US.address, THEM.address, 6, bytes(1300))
        ptb = packet_too_big(ours, 1280)
        self.assertEqual(decode_packet_too_big(ptb).mtu, 1280)
        self.layer.packet_received(THEM.public_key, ptb)
        self.assertEqual(self.ptbs, [(THEM.public_key, 1280, ours[:512])])

    def test_ptb_not_ours_or_bad(self) -> None:
        """A PTB quoting somebody else's packet, or with a bad checksum, is ignored."""
        theirs = build_packet(OTHER.address, THEM.address, 6, bytes(1300))
        forged = bytearray(packet_too_big(theirs, 1280))
        forged[24:40] = US.address  # readdress it to us (checksum now wrong too)
        self.layer.packet_received(THEM.public_key, bytes(forged))
        ours = build_packet(US.address, THEM.address, 6, bytes(1300))
        bad = bytearray(packet_too_big(ours, 1280))
        bad[-1] ^= 1
        self.layer.packet_received(THEM.public_key, bytes(bad))
        self.assertEqual(self.ptbs, [])

    def test_echo(self) -> None:
        """An echo request is answered through the sessions."""
        body = bytearray(b"\x80\x00\x00\x00\x00\x01\x00\x02ping")
        body[2:4] = upper_layer_checksum(THEM.address, US.address, 58, bytes(body)).to_bytes(
            2, "big"
        )
        self.layer.packet_received(
            THEM.public_key, build_packet(THEM.address, US.address, 58, bytes(body))
        )
        ((dest, plaintext),) = self.sessions.sent
        self.assertEqual((dest, plaintext[0], plaintext[41]), (THEM.public_key, 1, 129))

    def test_handler_failure_logged(self) -> None:
        """A failing protocol handler is logged; the layer keeps going."""
        self.layer.register_protocol(6, lambda k, p: 1 / 0)
        self.layer.packet_received(THEM.public_key, build_packet(THEM.address, US.address, 6, b"x"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertRaises(ValueError, self.layer.register_protocol, 256, lambda k, p: None)


class ArbitraryInputTests(SynchronousTestCase):
    """Arbitrary packets from the overlay or from our stack never raise."""

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=120), st.booleans())
    def test_arbitrary(self, tail: bytes, valid_start: bool) -> None:
        """Random packets (some with a valid header start) are dropped or delivered, never raise."""
        clock = Clock()
        clock.advance(1.7e9)
        layer = IPv6Layer(US.public_key, FakeSessions(), FakeLookups(), clock)
        got: list[tuple[bytes, bytes]] = []
        layer.register_protocol(17, lambda k, p: got.append((k, p)))
        data = (b"\x60" + bytes(7) + THEM.address + US.address + tail) if valid_start else tail
        layer.packet_received(THEM.public_key, data)
        layer.send_ipv6(data)
        for _, packet in got:
            self.assertEqual(packet[8:24], THEM.address)
        layer.stop()
