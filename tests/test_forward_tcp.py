"""
Tests for L{axl.forward.splice} (joining two connections: data, backpressure, FIN and RST
mapping, idle timeout, caps), L{axl.forward.resolve} (address -> key) and the pieces of
L{axl.forward.tcp} that need no network.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.error import ConnectionDone, ConnectionLost, TCPTimedOutError
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.address import addr_for_key, key_for_addr, subnet_for_key
from axl.forward.proxy_v2 import decode_proxy_v2
from axl.forward.resolve import KeyResolver
from axl.forward.spec import OverlayTarget
from axl.forward.splice import EARLY_DATA_MAX, Forward, Splice
from axl.forward.tcp import describe, proxy_v2_prelude
from axl.overlay_address import OverlayAddress
from tests.forward_fakes import connected_end

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


class SpliceTests(SynchronousTestCase):
    """Two fake connections joined."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.forward = Forward("test", 2, 10.0, self.clock)
        self.a, self.ta = connected_end()
        self.b, self.tb = connected_end()

    def splice(self) -> Splice:
        return Splice(self.forward, self.a, self.b)

    def test_data_both_ways(self) -> None:
        """Bytes from either side are written to the other."""
        self.splice()
        self.a.dataReceived(b"to b")
        self.b.dataReceived(b"to a")
        self.assertEqual((self.tb.value(), self.ta.value()), (b"to b", b"to a"))

    def test_early_data_flushed(self) -> None:
        """What each side sent before the splice is written first, in order."""
        self.a.dataReceived(b"1")
        self.a.dataReceived(b"2")
        self.b.dataReceived(b"x")
        self.splice()
        self.assertEqual((self.tb.value(), self.ta.value()), (b"12", b"x"))

    def test_early_data_bound(self) -> None:
        """More than EARLY_DATA_MAX bytes before the splice resets that side."""
        with capturedLogs():
            self.a.dataReceived(bytes(EARLY_DATA_MAX))
            self.assertFalse(self.ta.aborted)
            self.a.dataReceived(b"!")
        self.assertTrue(self.ta.aborted)

    def test_backpressure(self) -> None:
        """Each transport has the other as producer; pausing it pauses the other side."""
        self.splice()
        self.assertTrue(self.ta.streaming and self.tb.streaming)
        self.ta.producer.pauseProducing()
        self.assertEqual((self.tb.producerState, self.ta.producerState), ("paused", "producing"))
        self.ta.producer.resumeProducing()
        self.assertEqual(self.tb.producerState, "producing")
        self.tb.producer.stopProducing()  # a consumer going away does not close the other side
        self.assertFalse(self.ta.disconnecting)

    def test_half_close(self) -> None:
        """A FIN from one side half-closes the other; once both sent FIN both are closed."""
        self.splice()
        self.a.readConnectionLost()
        self.assertTrue(self.tb.write_closed)
        self.assertFalse(self.ta.disconnecting or self.tb.disconnecting)
        self.b.dataReceived(b"reply")
        self.assertEqual(self.ta.value(), b"reply")
        self.b.readConnectionLost()
        self.assertTrue(self.ta.disconnecting and self.tb.disconnecting)
        self.assertIsNone(self.ta.producer)

    def test_eof_before_splice(self) -> None:
        """A FIN that arrived while dialling is passed on at the splice."""
        self.a.readConnectionLost()
        self.splice()
        self.assertTrue(self.tb.write_closed)

    def test_clean_close(self) -> None:
        """One side closing cleanly closes the other after its pending data (FIN)."""
        self.splice()
        self.a.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.tb.disconnecting)
        self.assertFalse(self.tb.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_reset(self) -> None:
        """One side reset resets the other."""
        self.splice()
        with capturedLogs() as events:
            self.b.connectionLost(Failure(ConnectionLost("connection reset by peer")))
        self.assertTrue(self.ta.aborted)
        self.assertIn("reset", formatEvent(events[0]))

    def test_idle(self) -> None:
        """No byte either way for idle seconds closes both sides; traffic postpones it."""
        self.splice()
        self.clock.advance(9)
        self.a.dataReceived(b"x")
        self.clock.advance(9)
        self.assertFalse(self.ta.disconnecting)
        with capturedLogs() as events:
            self.clock.advance(1)
        self.assertTrue(self.ta.disconnecting and self.tb.disconnecting)
        self.assertIn("idle for 10 s", formatEvent(events[0]))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ForwardTests(SynchronousTestCase):
    """Caps and close_all."""

    def test_cap(self) -> None:
        """admit refuses once max_conns ends are active, with a log line; failed() logs too."""
        forward = Forward("fwd", 1, 1.0, Clock())
        end, _ = connected_end()
        self.assertTrue(forward.admit("x"))
        forward.active.add(end)
        with capturedLogs() as events:
            self.assertFalse(forward.admit("127.0.0.1:5"))
            forward.failed("127.0.0.1:6", "refused")
        text = [formatEvent(e) for e in events]
        self.assertIn("fwd: refused a connection from 127.0.0.1:5: 1 connections open (max_conns)", text)
        self.assertIn("fwd: connection from 127.0.0.1:6 failed: refused", text)
        self.assertEqual(forward.stats, {"accepted": 1, "refused": 1, "failed": 1})

    def test_close_all(self) -> None:
        """close_all closes every active connection."""
        forward = Forward("fwd", 2, 1.0, Clock())
        end, transport = connected_end()
        forward.active.add(end)
        forward.close_all()
        self.assertTrue(transport.disconnecting)


class FakeIPv6:
    """The parts of the IPv6 layer the resolver reads."""

    def __init__(self, key: bytes) -> None:
        self.public_key = key
        self.address = addr_for_key(key)
        self.subnet = subnet_for_key(key)
        self.known: dict[bytes, bytes] = {}

    def known_key(self, address: bytes) -> bytes | None:
        return self.known.get(address)


class ResolverTests(SynchronousTestCase):
    """From a target to a full key."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.ipv6 = FakeIPv6(KEY_A)
        self.lookups: list[bytes] = []
        self.resolver = KeyResolver(self.ipv6, self.lookups.append, self.clock, 5.0)

    def test_key_name(self) -> None:
        """A key target needs no lookup."""
        self.assertEqual(self.successResultOf(self.resolver.resolve(OverlayTarget(KEY_B, None, 1))), KEY_B)

    def test_own_address_and_subnet(self) -> None:
        """Our own address and any address in our /64 are our key."""
        for address in (addr_for_key(KEY_A), subnet_for_key(KEY_A) + b"\x00" * 7 + b"\x01"):
            self.assertEqual(self.successResultOf(self.resolver.resolve(OverlayTarget(None, address, 1))), KEY_A)
        self.assertEqual(self.lookups, [])

    def test_lookup(self) -> None:
        """An unknown address is looked up (partial key), then answered once the key is learnt."""
        address = addr_for_key(KEY_B)
        d = self.resolver.resolve(OverlayTarget(None, address, 1))
        self.assertNoResult(d)
        self.assertEqual(self.lookups, [key_for_addr(address)])
        self.clock.advance(0.5)
        self.ipv6.known[address] = KEY_B
        self.clock.advance(0.05)
        self.assertEqual(self.successResultOf(d), KEY_B)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lookup_repeated_and_timeout(self) -> None:
        """The lookup is repeated about once a second; after the timeout the resolve fails."""
        d = self.resolver.resolve(OverlayTarget(None, addr_for_key(KEY_B), 1))
        for _ in range(300):
            self.clock.advance(0.02)
        self.assertGreaterEqual(len(self.lookups), 5)
        self.assertLessEqual(len(self.lookups), 6)
        self.failureResultOf(d, TCPTimedOutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """Cancelling stops the polling."""
        d = self.resolver.resolve(OverlayTarget(None, addr_for_key(KEY_B), 1))
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class HelperTests(SynchronousTestCase):
    """describe() and the PROXY v2 prelude."""

    def test_describe(self) -> None:
        """Addresses in logs: host:port, [v6]:port, unix path, short key."""
        self.assertEqual(describe(IPv4Address("TCP", "127.0.0.1", 5)), "127.0.0.1:5")
        self.assertEqual(describe(UNIXAddress(b"run/s")), "unix:run/s")
        text = describe(OverlayAddress(KEY_A, 80))
        self.assertTrue(text.startswith(KEY_A.hex()[:8]))
        self.assertNotIn(KEY_A.hex(), text)

    def test_prelude(self) -> None:
        """The prelude names the caller (address, port, key) and our address and port."""
        end, _ = connected_end(host=OverlayAddress(KEY_A, 80), peer=OverlayAddress(KEY_B, 50123))
        other, _ = connected_end()
        header, used = decode_proxy_v2(proxy_v2_prelude(end, other)) or self.fail("incomplete")
        self.assertEqual(header.source, (addr_for_key(KEY_B), 50123))
        self.assertEqual(header.destination, (addr_for_key(KEY_A), 80))
        self.assertEqual(header.yggdrasil_key, KEY_B)
        self.assertEqual(ipaddress.IPv6Address(header.source[0]).packed[0], 2)


