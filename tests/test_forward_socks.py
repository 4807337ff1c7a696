"""
Tests for L{axl.forward.socks} (the SOCKS5 server codec, RFC 1928/1929) and its Twisted adapter
L{axl.forward.tcp.SocksProtocol}: every reply code, bad greetings, truncated requests.
"""

from __future__ import annotations

import ipaddress
import struct

from twisted.internet.error import ConnectError, ConnectionRefusedError, TCPTimedOutError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from axl.forward import socks
from axl.forward.spec import OverlayTarget
from axl.forward.splice import Forward, SpliceEnd
from axl.forward.tcp import HANDSHAKE_TIMEOUT, SocksFactory, SocksProtocol
from axl.overlay_address import OverlayAddress
from tests.forward_fakes import FakeDialer, HalfCloseTransport, overlay_end

KEY = bytes(range(32))
ADDR_200 = ipaddress.IPv6Address("200:1234::1").packed
ADDR_300 = ipaddress.IPv6Address("300:1234:5678:9abc::42").packed


def request(atyp: int, host: bytes, port: int = 80, cmd: int = socks.CMD_CONNECT) -> bytes:
    if atyp == socks.ATYP_DOMAIN:
        host = bytes((len(host),)) + host
    return bytes((5, cmd, 0, atyp)) + host + struct.pack("!H", port)


def reply(code: int) -> bytes:
    return socks.encode_reply(code)


class CodecGreetingTests(SynchronousTestCase):
    """The method negotiation."""

    def test_no_auth(self) -> None:
        """A greeting offering no-auth is answered 05 00 and the codec waits for the request."""
        step = socks.SocksServerCodec().feed(b"\x05\x02\x02\x00")
        self.assertEqual((step.output, step.close, step.request), (b"\x05\x00", None, None))

    def test_no_acceptable_method(self) -> None:
        """A greeting without no-auth gets 05 FF and the connection is closed."""
        step = socks.SocksServerCodec().feed(b"\x05\x01\x02")
        self.assertEqual(step.output, b"\x05\xff")
        self.assertIn("does not offer", step.close or "")

    def test_zero_methods(self) -> None:
        """A greeting listing no methods gets 05 FF."""
        step = socks.SocksServerCodec().feed(b"\x05\x00")
        self.assertEqual(step.output, b"\x05\xff")
        self.assertIsNotNone(step.close)

    def test_socks4(self) -> None:
        """A SOCKS4 request (version 4) is closed without a SOCKS5 reply."""
        step = socks.SocksServerCodec().feed(b"\x04\x01\x00\x50\x01\x02\x03\x04\x00")
        self.assertEqual(step.output, b"")
        self.assertIn("version byte 4", step.close or "")

    def test_http_request(self) -> None:
        """Plain HTTP sent to the proxy is closed, not waited on."""
        step = socks.SocksServerCodec().feed(b"GET / HTTP/1.1\r\n")
        self.assertIsNotNone(step.close)

    def test_truncated_greeting_waits(self) -> None:
        """A greeting cut short produces nothing until the rest arrives."""
        codec = socks.SocksServerCodec()
        for part in (b"\x05", b"\x03\x01", b"\x02"):
            self.assertEqual(codec.feed(part).output, b"")
        self.assertEqual(codec.feed(b"\x00").output, b"\x05\x00")

    def test_feed_after_done(self) -> None:
        """Feeding a finished codec is a programming error."""
        codec = socks.SocksServerCodec()
        codec.feed(b"\x04")
        self.assertTrue(codec.done)
        self.assertRaises(RuntimeError, codec.feed, b"x")


class CodecAuthTests(SynchronousTestCase):
    """RFC 1929 user/password."""

    def setUp(self) -> None:
        self.codec = socks.SocksServerCodec((b"alice", b"secret"))

    def test_requires_userpass(self) -> None:
        """With credentials configured, a no-auth-only greeting gets 05 FF."""
        step = self.codec.feed(b"\x05\x01\x00")
        self.assertEqual(step.output, b"\x05\xff")
        self.assertIsNotNone(step.close)

    def test_good_credentials(self) -> None:
        """The right user and password get 01 00, then the request is parsed."""
        step = self.codec.feed(b"\x05\x02\x00\x02" + b"\x01\x05alice\x06secret"
                               + request(socks.ATYP_IPV6, ADDR_200))  # fmt: skip
        self.assertEqual(step.output, b"\x05\x02\x01\x00")
        self.assertEqual(step.request, socks.Request(1, socks.ATYP_IPV6, ADDR_200, 80))

    def test_wrong_password(self) -> None:
        """A wrong password gets 01 01 and the connection is closed."""
        step = self.codec.feed(b"\x05\x01\x02\x01\x05alice\x05wrong")
        self.assertEqual(step.output, b"\x05\x02\x01\x01")
        self.assertIn("wrong user name or password", step.close or "")

    def test_wrong_user(self) -> None:
        """A wrong user name gets 01 01."""
        step = self.codec.feed(b"\x05\x01\x02\x01\x03bob\x06secret")
        self.assertEqual(step.output[-2:], b"\x01\x01")

    def test_bad_auth_version(self) -> None:
        """A sub-negotiation with a version other than 1 is refused."""
        step = self.codec.feed(b"\x05\x01\x02\x05\x05alice\x06secret")
        self.assertEqual(step.output, b"\x05\x02\x01\x01")
        self.assertIsNotNone(step.close)

    def test_truncated_auth_waits(self) -> None:
        """Credentials arriving byte by byte are answered once complete."""
        self.codec.feed(b"\x05\x01\x02")
        data = b"\x01\x05alice\x06secret"
        for i in range(len(data) - 1):
            self.assertEqual(self.codec.feed(data[i : i + 1]).output, b"")
        self.assertEqual(self.codec.feed(data[-1:]).output, b"\x01\x00")


class CodecRequestTests(SynchronousTestCase):
    """The request and the replies decided without dialling."""

    def feed(self, data: bytes) -> socks.Step:
        codec = socks.SocksServerCodec()
        codec.feed(b"\x05\x01\x00")
        return codec.feed(data)

    def test_ipv6_connect(self) -> None:
        """An IPv6 CONNECT is returned whole, with the bytes that followed it."""
        step = self.feed(request(socks.ATYP_IPV6, ADDR_200, 443) + b"early")
        self.assertEqual(step.request, socks.Request(1, socks.ATYP_IPV6, ADDR_200, 443))
        self.assertEqual(step.rest, b"early")

    def test_domain_connect(self) -> None:
        """A domain CONNECT carries the name as text."""
        name = KEY.hex().encode() + b".pk.ygg"
        step = self.feed(request(socks.ATYP_DOMAIN, name, 22))
        self.assertEqual(step.request, socks.Request(1, socks.ATYP_DOMAIN, name.decode(), 22))

    def test_truncated_requests_wait(self) -> None:
        """Every prefix of a request produces nothing; the whole one is parsed."""
        for atyp, host in ((socks.ATYP_IPV6, ADDR_200), (socks.ATYP_IPV4, b"\x01\x02\x03\x04"),
                           (socks.ATYP_DOMAIN, b"example.com")):  # fmt: skip
            data = request(atyp, host)
            codec = socks.SocksServerCodec()
            codec.feed(b"\x05\x01\x00")
            for i in range(len(data) - 1):
                step = codec.feed(data[i : i + 1])
                self.assertEqual((step.output, step.request, step.close), (b"", None, None))
            self.assertIsNotNone(codec.feed(data[-1:]).request)

    def test_bind_not_supported(self) -> None:
        """BIND is answered 07 (command not supported)."""
        step = self.feed(request(socks.ATYP_IPV6, ADDR_200, cmd=2))
        self.assertEqual(step.output, reply(socks.COMMAND_NOT_SUPPORTED))
        self.assertIsNotNone(step.close)

    def test_udp_associate_not_supported(self) -> None:
        """UDP ASSOCIATE is answered 07."""
        step = self.feed(request(socks.ATYP_IPV4, bytes(4), 0, cmd=3))
        self.assertEqual(step.output, reply(socks.COMMAND_NOT_SUPPORTED))

    def test_unknown_address_type(self) -> None:
        """An address type other than 1, 3, 4 is answered 08 at once."""
        step = self.feed(b"\x05\x01\x00\x09")
        self.assertEqual(step.output, reply(socks.ADDRESS_TYPE_NOT_SUPPORTED))
        self.assertIsNotNone(step.close)

    def test_bad_request_version(self) -> None:
        """A request whose version byte is not 5 gets 01 (general failure)."""
        step = self.feed(b"\x04\x01\x00\x04")
        self.assertEqual(step.output, reply(socks.GENERAL_FAILURE))
        self.assertIsNotNone(step.close)

    def test_pipelined(self) -> None:
        """Greeting and request in one segment give the method reply and the request."""
        step = socks.SocksServerCodec().feed(b"\x05\x01\x00" + request(socks.ATYP_IPV6, ADDR_200))
        self.assertEqual(step.output, b"\x05\x00")
        self.assertIsNotNone(step.request)


class ReplyEncodingTests(SynchronousTestCase):
    """L{socks.encode_reply}."""

    def test_every_code(self) -> None:
        """Each of the nine reply codes encodes as 05 code 00 then a zero IPv4 bind address."""
        for code in range(9):
            self.assertEqual(socks.encode_reply(code), bytes((5, code, 0, 1)) + bytes(6))
            self.assertIn(code, socks.REPLY_TEXT)

    def test_bound_address(self) -> None:
        """A success names the IPv6 address and port bound."""
        self.assertEqual(socks.encode_reply(0, ADDR_200, 0x1234),
                         b"\x05\x00\x00\x04" + ADDR_200 + b"\x12\x34")  # fmt: skip

    def test_bad_address_length(self) -> None:
        """Only a 16-byte address is a bound address."""
        self.assertRaises(ValueError, socks.encode_reply, 0, b"\x01\x02\x03\x04", 1)


class CheckTargetTests(SynchronousTestCase):
    """Which requests may be dialled and which get a reply code at once."""

    def check(self, atyp: int, host: bytes | str, port: int = 80) -> object:
        return socks.check_target(socks.Request(1, atyp, host, port))

    def test_node_address(self) -> None:
        """An address in 200::/8 is dialled (the key is looked up)."""
        self.assertEqual(self.check(socks.ATYP_IPV6, ADDR_200), OverlayTarget(None, ADDR_200, 80))

    def test_subnet_address(self) -> None:
        """An address in a node's 300::/64 is dialled too."""
        self.assertEqual(self.check(socks.ATYP_IPV6, ADDR_300), OverlayTarget(None, ADDR_300, 80))

    def test_key_name(self) -> None:
        """C{<64 hex>.pk.ygg} (any case, trailing dot allowed) names the node's key."""
        for name in (KEY.hex() + ".pk.ygg", KEY.hex().upper() + ".pk.ygg.", ):
            self.assertEqual(self.check(socks.ATYP_DOMAIN, name, 22), OverlayTarget(KEY, None, 22))

    def test_ipv6_literal_as_name(self) -> None:
        """An IPv6 literal sent as a name (socks5h clients) is an address."""
        self.assertEqual(self.check(socks.ATYP_DOMAIN, "[200:1234::1]"), OverlayTarget(None, ADDR_200, 80))

    def test_ipv4_network_unreachable(self) -> None:
        """IPv4 (as an address or a literal name) is network unreachable (03)."""
        self.assertEqual(self.check(socks.ATYP_IPV4, b"\x7f\x00\x00\x01"), socks.NETWORK_UNREACHABLE)
        self.assertEqual(self.check(socks.ATYP_DOMAIN, "10.0.0.1"), socks.NETWORK_UNREACHABLE)

    def test_other_ipv6_network_unreachable(self) -> None:
        """IPv6 outside 200::/7 is network unreachable (03)."""
        other = ipaddress.IPv6Address("2001:db8::1").packed
        self.assertEqual(self.check(socks.ATYP_IPV6, other), socks.NETWORK_UNREACHABLE)
        self.assertEqual(self.check(socks.ATYP_DOMAIN, "::1"), socks.NETWORK_UNREACHABLE)

    def test_other_names_host_unreachable(self) -> None:
        """Any other name (DNS names, short or bad .pk.ygg names) is host unreachable (04)."""
        for name in ("example.com", "abcd.pk.ygg", "z" * 64 + ".pk.ygg", ""):
            self.assertEqual(self.check(socks.ATYP_DOMAIN, name), socks.HOST_UNREACHABLE, name)

    def test_port_zero(self) -> None:
        """Port 0 is a general failure (01)."""
        self.assertEqual(self.check(socks.ATYP_IPV6, ADDR_200, 0), socks.GENERAL_FAILURE)


class SocksProtocolTests(SynchronousTestCase):
    """The adapter: handshake over a transport, dial, reply, splice."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.forward = Forward("socks 127.0.0.1:1080", 2, 60.0, self.clock)
        self.dialer = FakeDialer()
        self.factory = SocksFactory(self.forward, self.dialer)  # type: ignore[arg-type]

    def connect(self) -> tuple[SocksProtocol, HalfCloseTransport]:
        proto = self.factory.buildProtocol(None)  # type: ignore[arg-type]
        assert proto is not None
        transport = HalfCloseTransport()
        proto.makeConnection(transport)
        return proto, transport

    def handshake(self, atyp: int = socks.ATYP_IPV6, host: bytes = ADDR_200) -> tuple[SocksProtocol, HalfCloseTransport]:
        proto, transport = self.connect()
        proto.dataReceived(b"\x05\x01\x00" + request(atyp, host, 80))
        return proto, transport

    def test_success(self) -> None:
        """Once the overlay connects: reply 00 with our overlay address and port, then splice."""
        proto, transport = self.handshake()
        self.assertEqual(transport.producerState, "paused")
        [(target, d)] = self.dialer.calls
        self.assertEqual(target, OverlayTarget(None, ADDR_200, 80))
        other, other_transport = overlay_end(KEY, 50000)
        d.callback(other)
        ours = ipaddress.IPv6Address(OverlayAddress(KEY, 1).ipv6).packed
        self.assertEqual(transport.value(), b"\x05\x00" + socks.encode_reply(0, ours, 50000))
        self.assertEqual(transport.producerState, "producing")
        proto.dataReceived(b"GET /")
        other.dataReceived(b"HTTP/1.1")
        self.assertEqual(other_transport.value(), b"GET /")
        self.assertTrue(transport.value().endswith(b"HTTP/1.1"))
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 60.0)  # idle timer only

    def test_early_data_forwarded(self) -> None:
        """Bytes sent right after the request reach the remote side once connected."""
        proto, transport = self.connect()
        proto.dataReceived(b"\x05\x01\x00" + request(socks.ATYP_IPV6, ADDR_200) + b"hello")
        other, other_transport = overlay_end(KEY, 50000)
        self.dialer.calls[0][1].callback(other)
        self.assertEqual(other_transport.value(), b"hello")

    def dial_fails(self, failure: Failure, code: int) -> None:
        proto, transport = self.handshake()
        transport.clear()
        with capturedLogs() as events:
            self.dialer.calls[0][1].errback(failure)
        self.assertEqual(transport.value(), reply(code))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.forward.stats["failed"], 1)
        self.assertTrue(any("failed" in str(e.get("log_format")) for e in events))

    def test_refused(self) -> None:
        """An overlay RST (port closed) is answered 05 (connection refused)."""
        self.dial_fails(Failure(ConnectionRefusedError()), socks.CONNECTION_REFUSED)

    def test_timeout(self) -> None:
        """No answer within the connect timeout is answered 04 (host unreachable)."""
        self.dial_fails(Failure(TCPTimedOutError()), socks.HOST_UNREACHABLE)

    def test_other_failure(self) -> None:
        """Any other connect failure is answered 01 (general failure)."""
        self.dial_fails(Failure(ConnectError("stack stopped")), socks.GENERAL_FAILURE)

    def test_unreachable_answered_at_once(self) -> None:
        """An IPv4 CONNECT is answered 03 at once, without dialling, and logged."""
        with capturedLogs() as events:
            proto, transport = self.handshake(socks.ATYP_IPV4, b"\x01\x02\x03\x04")
        self.assertEqual(transport.value(), b"\x05\x00" + reply(socks.NETWORK_UNREACHABLE))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.dialer.calls, [])
        self.assertTrue(any("refused CONNECT" in str(e.get("log_format")) for e in events))

    def test_host_unreachable_at_once(self) -> None:
        """A DNS name is answered 04 at once."""
        proto, transport = self.handshake(socks.ATYP_DOMAIN, b"example.com")
        self.assertEqual(transport.value(), b"\x05\x00" + reply(socks.HOST_UNREACHABLE))
        self.assertEqual(self.dialer.calls, [])

    def test_logged_keys_shortened(self) -> None:
        """A refused name holding a full key is logged with the key shortened."""
        with capturedLogs() as events:
            self.handshake(socks.ATYP_DOMAIN, KEY.hex().encode() + b".pk.ygg.example")
        text = " ".join(formatEvent(e) for e in events)
        self.assertIn(KEY.hex()[:8] + "…", text)
        self.assertNotIn(KEY.hex(), text)

    def test_handshake_timeout(self) -> None:
        """A client that never finishes its request is closed after HANDSHAKE_TIMEOUT."""
        proto, transport = self.connect()
        proto.dataReceived(b"\x05\x01")
        self.clock.advance(HANDSHAKE_TIMEOUT)
        self.assertTrue(transport.disconnecting)
        proto.connectionLost(Failure(Exception("closed")))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.forward.active, set())

    def test_bad_greeting_closes(self) -> None:
        """A bad greeting closes the connection and cancels the handshake timer."""
        proto, transport = self.connect()
        proto.dataReceived(b"\x04\x01")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cap(self) -> None:
        """Over max_conns, a new connection is refused (no protocol) and logged."""
        self.connect()
        p2, t2 = self.connect()
        with capturedLogs() as events:
            self.assertIsNone(self.factory.buildProtocol(None))  # type: ignore[arg-type]
        self.assertEqual(self.forward.stats["refused"], 1)
        self.assertTrue(any("max_conns" in str(e.get("log_format")) for e in events))
        p2.connectionLost(Failure(Exception("gone")))
        self.assertIsNotNone(self.factory.buildProtocol(None))  # type: ignore[arg-type]

    def test_client_leaves_while_dialling(self) -> None:
        """A client gone while the overlay connect is pending cancels that connect."""
        proto, transport = self.handshake()
        d = self.dialer.calls[0][1]
        transport.clear()
        proto.connectionLost(Failure(Exception("gone")))
        self.assertTrue(d.called)  # cancelled
        self.assertEqual((transport.value(), self.forward.stats["failed"]), (b"", 0))

    def test_user_password(self) -> None:
        """With credentials configured the adapter asks for them and proceeds only when right."""
        factory = SocksFactory(self.forward, self.dialer, (b"alice", b"secret"))  # type: ignore[arg-type]
        good = factory.buildProtocol(None)  # type: ignore[arg-type]
        bad = factory.buildProtocol(None)  # type: ignore[arg-type]
        assert good is not None and bad is not None
        t_good, t_bad = HalfCloseTransport(), HalfCloseTransport()
        good.makeConnection(t_good)
        bad.makeConnection(t_bad)
        good.dataReceived(b"\x05\x01\x02\x01\x05alice\x06secret" + request(socks.ATYP_IPV6, ADDR_200))
        bad.dataReceived(b"\x05\x01\x02\x01\x05alice\x06public" + request(socks.ATYP_IPV6, ADDR_200))
        self.assertEqual(t_good.value(), b"\x05\x02\x01\x00")
        self.assertEqual(len(self.dialer.calls), 1)
        self.assertEqual(t_bad.value(), b"\x05\x02\x01\x01")
        self.assertTrue(t_bad.disconnecting)

    def test_interfaces(self) -> None:
        """The protocols are half-closeable (a FIN is passed on, not turned into a close)."""
        proto, _ = self.connect()
        verifyObject(IHalfCloseableProtocol, proto)
        verifyObject(IHalfCloseableProtocol, SpliceEnd())
