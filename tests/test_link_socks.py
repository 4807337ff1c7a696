# -*- test-case-name: tests.test_link_socks -*-
"""
Tests for L{axl.link.socks}: SOCKS5 client handshake (spec/yggdrasil-extras.md section 5), the
endpoint in memory, and C{/send} of 16 MiB between two in-process nodes whose only link goes
through a SOCKS5 proxy (socks:// and sockstls://).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from twisted.internet.interfaces import IStreamClientEndpoint

from axl.errors import ConfigError
from axl.link.socks import SOCKS_TIMEOUT, Socks5Handshake, SocksClientEndpoint, SocksError
from axl.link.uri import parse_listen_uri, parse_peer_uri
from tests.inprocess import InProcessNodesTestCase
from tests.test_e2e_twistd import free_port
from tests.transport_helpers import BULK_SIZE, Socks5Proxy, send_bulk, wait_for


class HandshakeTests(SynchronousTestCase):
    def test_no_auth_hostname(self) -> None:
        """Greeting 05 01 00, then CONNECT with ATYP 3 and the name itself (no local DNS)."""
        h = Socks5Handshake("abc.onion", 9001)
        self.assertEqual(h.start(), b"\x05\x01\x00")
        self.assertEqual(h.feed(b"\x05\x00"), b"\x05\x01\x00\x03\x09abc.onion\x23\x29")
        self.assertFalse(h.is_open)
        self.assertEqual(h.feed(b"\x05\x00\x00\x01\x01\x02\x03\x04\x00\x50tail"), b"")
        self.assertTrue(h.is_open)
        self.assertEqual(h.leftover, b"tail")

    def test_ip_literals(self) -> None:
        """IPv4 targets use ATYP 1, IPv6 ATYP 4 (RFC 1928)."""
        self.assertEqual(Socks5Handshake("1.2.3.4", 1).feed(b"\x05\x00"),
                         b"\x05\x01\x00\x01\x01\x02\x03\x04\x00\x01")  # fmt: skip
        self.assertEqual(Socks5Handshake("::1", 2).feed(b"\x05\x00"),
                         b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x00\x02")  # fmt: skip

    def test_user_password(self) -> None:
        """With a user: greeting 05 02 00 02, RFC 1929 sub-negotiation, then CONNECT."""
        h = Socks5Handshake("h", 1, "us:er", "pa:ss")
        self.assertEqual(h.start(), b"\x05\x02\x00\x02")
        self.assertEqual(h.feed(b"\x05\x02"), b"\x01\x05us:er\x05pa:ss")
        self.assertEqual(h.feed(b"\x01\x00"), b"\x05\x01\x00\x03\x01h\x00\x01")

    def test_byte_by_byte(self) -> None:
        """Replies split at every byte (domain-type bound address) still open the tunnel."""
        h = Socks5Handshake("h", 1)
        reply = b"\x05\x00" + b"\x05\x00\x00\x03\x04host\x00\x01" + b"x"
        out = b"".join(h.feed(bytes([c])) for c in reply[:-1])
        self.assertEqual(out, b"\x05\x01\x00\x03\x01h\x00\x01")
        self.assertTrue(h.is_open)
        self.assertEqual(h.leftover, b"")

    def test_refusals(self) -> None:
        """Each failure is a SocksError with the reason: version, methods, auth, CONNECT reply."""
        cases = [
            (Socks5Handshake("h", 1), b"\x04\x00", "not SOCKS5"),
            (Socks5Handshake("h", 1), b"\x05\xff", "authentication"),
            (Socks5Handshake("h", 1), b"\x05\x02", "authentication"),
            (Socks5Handshake("h", 1, "u", "p"), b"\x05\x02\x01\x01", "user name and password"),
            (Socks5Handshake("h", 1), b"\x05\x00\x05\x05\x00\x01\x00", "connection refused"),
            (Socks5Handshake("h", 1), b"\x05\x00\x05\x00\x00\x07\x00", "address type"),
        ]
        for h, data, text in cases:
            with self.subTest(text=text):
                e = self.assertRaises(SocksError, h.feed, data)
                self.assertIn(text, str(e))


@implementer(IStreamClientEndpoint)
class _FakeProxy:
    """Connects the proxy-side protocol to a StringTransport at once."""

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.protocol: Any = None

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        return succeed(self.protocol)


class _Recorder(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.lost: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.lost = reason


class _Factory:
    def __init__(self) -> None:
        self.built: list[_Recorder] = []

    def buildProtocol(self, addr: Any) -> _Recorder:
        p = _Recorder()
        self.built.append(p)
        return p

    def doStart(self) -> None: ...
    def doStop(self) -> None: ...


class EndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.proxy = _FakeProxy()
        self.endpoint = SocksClientEndpoint(self.proxy, self.clock, "target.example", 443, "u", "p")
        self.factory = _Factory()

    def test_tunnel_then_link(self) -> None:
        """The endpoint fires with the link protocol only once the tunnel is open; bytes after
        the reply (and later ones) reach it; its writes go into the tunnel."""
        d = self.endpoint.connect(self.factory)  # type: ignore[arg-type]
        self.assertEqual(self.proxy.transport.value(), b"\x05\x02\x00\x02")
        self.proxy.protocol.dataReceived(b"\x05\x02")
        self.proxy.protocol.dataReceived(b"\x01\x00")
        self.assertNoResult(d)
        self.proxy.transport.clear()
        self.proxy.protocol.dataReceived(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00meta")
        link = self.successResultOf(d)
        self.assertEqual(link.data, b"meta")
        self.proxy.protocol.dataReceived(b"more")
        self.assertEqual(link.data, b"metamore")
        link.transport.write(b"out")
        self.assertEqual(self.proxy.transport.value(), b"out")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refused(self) -> None:
        """A CONNECT refusal fails the dial with the proxy's reason and closes the connection."""
        d = self.endpoint.connect(self.factory)  # type: ignore[arg-type]
        self.proxy.protocol.dataReceived(b"\x05\x02\x01\x00\x05\x04\x00\x01\x00")
        f = self.failureResultOf(d, SocksError)
        self.assertIn("host unreachable", f.getErrorMessage())
        self.assertTrue(self.proxy.transport.disconnecting)
        self.assertEqual(self.factory.built, [])

    def test_timeout(self) -> None:
        """A proxy that never answers fails the dial after SOCKS_TIMEOUT."""
        d = self.endpoint.connect(self.factory)  # type: ignore[arg-type]
        self.clock.advance(SOCKS_TIMEOUT)
        self.assertIn("no tunnel", self.failureResultOf(d, SocksError).getErrorMessage())
        self.assertTrue(self.proxy.transport.disconnecting)

    def test_proxy_closes(self) -> None:
        """The proxy closing mid-exchange fails the dial (no link protocol is built)."""
        d = self.endpoint.connect(self.factory)  # type: ignore[arg-type]
        self.proxy.protocol.connectionLost(Failure(Exception("gone")))
        self.assertIn("closed the connection", self.failureResultOf(d, SocksError).getErrorMessage())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """Cancelling the dial (removing the peer) aborts the proxy connection."""
        d = self.endpoint.connect(self.factory)  # type: ignore[arg-type]
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.proxy.transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class URITests(SynchronousTestCase):
    def test_socks_uri(self) -> None:
        """Proxy, percent-decoded userinfo and the first path segment as target; the link URI
        keeps userinfo and the extra path (extras section 5)."""
        text = "socks://us%3Aer:pa%3Ass@localhost:19610/[::1]:19602/ignored/extra?priority=3"
        uri = parse_peer_uri(text)
        self.assertEqual((uri.host, uri.port), ("localhost", 19610))
        self.assertEqual((uri.target_host, uri.target_port), ("::1", 19602))
        self.assertEqual((uri.proxy_user, uri.proxy_password, uri.priority), ("us:er", "pa:ss", 3))
        self.assertEqual(uri.link_uri, text.split("?")[0])

    def test_sockstls_sni(self) -> None:
        """sni= is kept for sockstls (its TLS uses it)."""
        uri = parse_peer_uri("sockstls://127.0.0.1:1/h:2?sni=foo.example")
        self.assertEqual((uri.sni, uri.proxy_user), ("foo.example", None))

    def test_bad(self) -> None:
        """A missing or malformed target is a config error; socks cannot listen."""
        for text in ("socks://p:1", "socks://p:1/", "socks://p:1/host", "socks://p:1/h:x"):
            with self.subTest(uri=text):
                self.assertRaises(ConfigError, parse_peer_uri, text)
        e = self.assertRaises(ConfigError, parse_listen_uri, "socks://127.0.0.1:1/h:1")
        self.assertIn("SOCKS", str(e))


class SocksSendTests(InProcessNodesTestCase):
    timeout = 240

    @inlineCallbacks
    def _bulk_through_proxy(self, scheme: str, auth: tuple[str, str] | None) -> Any:
        proxy = Socks5Proxy(auth)
        proxy_port = yield proxy.start()
        self.addCleanup(proxy.stop)
        listen = "tls" if scheme == "sockstls" else "tcp"
        port = free_port()
        a = self.start_node("A", {"Listen": [f"{listen}://127.0.0.1:{port}"]})
        userinfo = f"{quote(auth[0], safe='')}:{quote(auth[1], safe='')}@" if auth else ""
        peer = f"{scheme}://{userinfo}localhost:{proxy_port}/localhost:{port}"
        b = self.start_node("B", {"Peers": [peer]})
        yield wait_for("the link through the proxy", lambda: bool(b.links.links()))
        self.assertEqual(b.links.entries()[0].uri, peer)
        sent, got, sender = yield send_bulk(b, a)
        self.assertEqual(len(got), BULK_SIZE)
        self.assertTrue(got == sent, "payload corrupted")
        self.assertEqual(sender, b.identity.public_key.hex())
        # The target went to the proxy as a name (ATYP 3), never resolved locally.
        self.assertEqual(proxy.requests[0], (3, "localhost", port))
        return proxy

    @inlineCallbacks
    def test_socks_send(self) -> Any:
        """16 MiB /send from B to A whose only link is socks:// with RFC 1929 auth."""
        proxy = yield self._bulk_through_proxy("socks", ("us:er", "pa ss"))
        self.assertEqual(proxy.received[0], b"\x05\x02\x00\x02")

    @inlineCallbacks
    def test_sockstls_send(self) -> Any:
        """16 MiB /send from B to A whose only link is sockstls:// to A's tls:// listener."""
        proxy = yield self._bulk_through_proxy("sockstls", None)
        self.assertEqual(proxy.received[0], b"\x05\x01\x00")
