# -*- test-case-name: tests.test_session_harness -*-
"""
Our session + IPv6 stacks (L{axl.ipv6.stack.build_overlay}) exchanging IPv6 packets through the
fake network of L{axl.ipv6.testing}: two nodes, and three with a relay.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity
from axl.ipv6.packet import build_packet
from axl.ipv6.testing import FakeNetwork, Stack

UDP = 17


class TwoStacksTests(SynchronousTestCase):
    """A and B."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1.7e9)
        self.net = FakeNetwork()
        self.a = Stack(self.net, Identity(bytes(32)), self.clock)
        self.b = Stack(self.net, Identity(bytes(range(1, 33))), self.clock)
        self.addCleanup(self.a.stop)
        self.addCleanup(self.b.stop)
        self.a_got = self.a.listen(UDP)
        self.b_got = self.b.listen(UDP)

    def test_both_ways(self) -> None:
        """
        A's packet to B's address is looked up, encrypted, delivered with A's full key; B's
        reply needs no lookup; 20 more packets each way arrive in order.
        """
        a, b = self.a.public_key, self.b.public_key
        p = build_packet(self.a.ipv6.address, self.b.ipv6.address, UDP, b"ping")
        self.a.ipv6.send_ipv6(p)
        self.net.flush()
        self.assertEqual(self.b_got, [(a, p)])
        self.assertEqual(len(self.a.router.lookups), 1)
        r = build_packet(self.b.ipv6.address, self.a.ipv6.address, UDP, b"pong")
        self.b.ipv6.send_ipv6(r)
        self.net.flush()
        self.assertEqual(self.a_got, [(b, r)])
        self.assertEqual(self.b.router.lookups, [])
        for i in range(20):
            self.a.ipv6.send_ipv6(
                build_packet(self.a.ipv6.address, self.b.ipv6.address, UDP, b"a%d" % i)
            )
            self.b.ipv6.send_ipv6(
                build_packet(self.b.ipv6.address, self.a.ipv6.address, UDP, b"b%d" % i)
            )
        self.net.flush()
        self.assertEqual([pk[40:] for _, pk in self.b_got[1:]], [b"a%d" % i for i in range(20)])
        self.assertEqual([pk[40:] for _, pk in self.a_got[1:]], [b"b%d" % i for i in range(20)])
        # Nothing on the wire is plaintext.
        self.assertFalse(any(b"ping" in d or b"pong" in d for _, _, d in self.net.sent))

    def test_large_packet(self) -> None:
        """A 65535-byte packet (the MTU) crosses intact."""
        p = build_packet(
            self.a.ipv6.address, self.b.ipv6.address, UDP, bytes(range(256)) * 255 + bytes(215)
        )
        self.assertEqual(len(p), 65535)
        self.a.ipv6.send_ipv6(p)
        self.net.flush()
        self.assertEqual(self.b_got, [(self.a.public_key, p)])

    def test_subnet_destination(self) -> None:
        """A packet to an address in B's /64 is delivered to B."""
        dst = self.b.identity.subnet + b"\x00" * 7 + b"\x05"
        p = build_packet(self.a.ipv6.address, dst, UDP, b"sub")
        self.a.ipv6.send_ipv6(p)
        self.net.flush()
        self.assertEqual(self.b_got, [(self.a.public_key, p)])

    def test_remote_debug(self) -> None:
        """A asks B for GetSelf / NodeInfo over the sessions and gets B's answers."""
        d1 = self.a.proto.request_self(self.b.public_key)
        self.net.flush()
        d2 = self.a.proto.request_node_info(self.b.public_key)
        self.net.flush()
        self.assertEqual(self.successResultOf(d1)["key"], self.b.public_key.hex())
        self.assertEqual(self.successResultOf(d2)["buildname"], "axl")

    def test_peer_restart(self) -> None:
        """
        After B restarts (same key, no sessions), A's next two packets are lost and the third
        arrives, as in the transcript's 23-29 s episode (throwaway init, same-second ack
        ignored, resync init, then the sessions agree).
        """
        p = build_packet(self.a.ipv6.address, self.b.ipv6.address, UDP, b"1")
        self.a.ipv6.send_ipv6(p)
        self.net.flush()
        self.b.stop()
        self.clock.advance(5)
        self.b = Stack(self.net, self.b.identity, self.clock)
        self.addCleanup(self.b.stop)
        got = self.b.listen(UDP)
        counts = []
        for i in range(4):
            self.clock.advance(3)
            self.a.ipv6.send_ipv6(
                build_packet(self.a.ipv6.address, self.b.ipv6.address, UDP, b"x%d" % i)
            )
            self.net.flush()
            counts.append(len(got))
        self.assertEqual(counts, [0, 0, 1, 2])
        self.assertEqual([pk[40:] for _, pk in got], [b"x2", b"x3"])


class ThreeStacksTests(SynchronousTestCase):
    """A and C talk through a relay R that forwards without seeing the contents."""

    def test_via_relay(self) -> None:
        """Packets flow A -> C and C -> A through R; R's session layer never sees them."""
        clock = Clock()
        clock.advance(1.7e9)
        net = FakeNetwork()
        a = Stack(net, Identity(bytes(32)), clock)
        r = Stack(net, Identity(bytes([0x42]) * 32), clock)
        c = Stack(net, Identity(bytes(range(1, 33))), clock)
        for s in (a, r, c):
            self.addCleanup(s.stop)
        net.relays[(a.public_key, c.public_key)] = [r.public_key]
        net.relays[(c.public_key, a.public_key)] = [r.public_key]
        a_got, r_got, c_got = a.listen(UDP), r.listen(UDP), c.listen(UDP)
        p = build_packet(a.ipv6.address, c.ipv6.address, UDP, b"to c")
        a.ipv6.send_ipv6(p)
        net.flush()
        q = build_packet(c.ipv6.address, a.ipv6.address, UDP, b"to a")
        c.ipv6.send_ipv6(q)
        net.flush()
        self.assertEqual(c_got, [(a.public_key, p)])
        self.assertEqual(a_got, [(c.public_key, q)])
        self.assertEqual(r_got, [])
        self.assertIsNone(r.sessions.session(a.public_key))
        self.assertTrue(net.hops)
        self.assertEqual({hop for hop, _ in net.hops}, {r.public_key})
