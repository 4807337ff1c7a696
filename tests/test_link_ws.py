# -*- test-case-name: tests.test_link_ws -*-
"""
Tests for L{axl.link.ws}: the WebSocket link transport (spec/yggdrasil-extras.md section 4),
in memory over iosim (both sides autobahn), with StringTransport for exact bytes, and end to end:
16 MiB C{/send} between two in-process nodes whose only link is C{ws://}.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from axl.link.core import LinkCore, LinkState
from axl.link.protocol import LinkFactory
from axl.link.testing import RecordingHandler, identity, make_core
from axl.link.uri import parse_listen_uri, parse_peer_uri
from axl.link.ws import (
    MAX_WS_CONNECTIONS,
    MAX_WS_MESSAGE,
    WebSocketClientEndpoint,
    WebSocketServerEndpoint,
    origin_allowed,
)
from tests.inprocess import InProcessNodesTestCase
from tests.test_e2e_twistd import free_port
from tests.transport_helpers import assert_link_and_bulk

PEER = IPv4Address("TCP", "10.0.0.2", 5555)


class _Transport(StringTransport):
    """StringTransport that, like a TCP transport, tolerates unregistering no producer."""

    def unregisterProducer(self) -> None:
        self.producer = None

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = enabled


def _upgrade_request(path: str = "/", protocol: str | None = "ygg-ws", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: Upgrade", "Upgrade: websocket",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]  # fmt: skip
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _client_frame(opcode: int, payload: bytes, close_code: int | None = None) -> bytes:
    """One masked client frame (FIN set)."""
    if close_code is not None:
        payload = close_code.to_bytes(2, "big") + payload
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse unmasked server frames after the HTTP response."""
    out = []
    while data:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        pos = 2
        if n == 126:
            n, pos = int.from_bytes(data[2:4], "big"), 4
        out.append((opcode, data[pos : pos + n]))
        data = data[pos + n :]
    return out


class ServerTests(SynchronousTestCase):
    """The listener side, byte-exact against StringTransport."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.cores: list[LinkCore] = []

        def new_core(addr: Any) -> LinkCore:
            core = make_core(identity(1), self.clock, uri=f"ws://{addr.host}:{addr.port}", inbound=True)
            self.cores.append(core)
            return core

        self.link_factory = LinkFactory(new_core)

    def serve(self, uri: str = "ws://127.0.0.1:0") -> tuple[Any, StringTransport]:
        endpoint = WebSocketServerEndpoint(None, parse_listen_uri(uri), handshake_timeout=0)  # type: ignore[arg-type]
        proto = endpoint.factory_for(self.link_factory).buildProtocol(PEER)
        transport = _Transport(peerAddress=PEER)
        proto.makeConnection(transport)
        return proto, transport

    def response(self, transport: StringTransport) -> tuple[bytes, bytes]:
        head, _, rest = transport.value().partition(b"\r\n\r\n")
        return head, rest

    def test_health(self) -> None:
        """GET /health and /healthz answer 200 OK (text/plain, 2 bytes) and close."""
        for path in ("/health", "/healthz"):
            proto, transport = self.serve()
            proto.dataReceived(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, body = self.response(transport)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"), head)
            self.assertIn(b"Content-Type: text/plain; charset=utf-8", head)
            self.assertEqual(body, b"OK")
            self.assertTrue(transport.disconnecting)

    def test_no_delay(self) -> None:
        """Both sides turn Nagle off on their TCP connection (autobahn's own attempt is a no-op)."""
        _, transport = self.serve()
        self.assertTrue(transport.no_delay)
        endpoint = WebSocketClientEndpoint(None, parse_peer_uri("ws://h:1"), handshake_timeout=0)  # type: ignore[arg-type]
        proto = endpoint.factory_for(LinkFactory(lambda a: None)).buildProtocol(PEER)
        client_transport = _Transport(peerAddress=PEER)
        proto.makeConnection(client_transport)
        self.assertTrue(client_transport.no_delay)

    def test_plain_get_is_426(self) -> None:
        """A GET without Upgrade to another path is refused with 426."""
        proto, transport = self.serve()
        proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 426"))
        self.assertEqual(self.cores, [])

    def test_any_path_upgrades_and_links(self) -> None:
        """Any path upgrades with ygg-ws; our meta is the first binary message; the client's
        bytes, split across messages at arbitrary points, make a link."""
        proto, transport = self.serve()
        proto.dataReceived(_upgrade_request("/any/path?priority=2"))
        head, rest = self.response(transport)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        self.assertIn(b"Sec-WebSocket-Protocol: ygg-ws", head)
        [(opcode, meta)] = _server_frames(rest)
        self.assertEqual((opcode, len(meta)), (2, 123))
        [core] = self.cores
        self.assertEqual(core.uri, "ws://10.0.0.2:5555")
        peer_meta = make_core(identity(2), self.clock)._meta
        for chunk in (peer_meta[:5], peer_meta[5:12], peer_meta[12:]):
            proto.dataReceived(_client_frame(2, chunk))
        self.assertIs(core.state, LinkState.UP)
        self.assertEqual(core.remote_key, identity(2).public_key)

    def test_no_subprotocol_1008(self) -> None:
        """A client not offering ygg-ws gets 101 with no protocol, then Close 1008; no link."""
        proto, transport = self.serve()
        proto.dataReceived(_upgrade_request(protocol="chat"))
        head, rest = self.response(transport)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"))
        self.assertNotIn(b"Sec-WebSocket-Protocol", head)
        [(opcode, payload)] = _server_frames(rest)
        self.assertEqual(opcode, 8)
        self.assertEqual(payload, b"\x03\xf0client must speak the ygg-ws subprotocol")
        self.assertEqual(self.cores, [])

    def test_origin(self) -> None:
        """A mismatched Origin is 403; a matching one or an origin= pattern is accepted."""
        proto, transport = self.serve()
        proto.dataReceived(_upgrade_request(extra="Origin: http://evil.example"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 403"), transport.value()[:40])
        proto, transport = self.serve()
        proto.dataReceived(_upgrade_request(extra="Origin: http://127.0.0.1"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101"))
        proto, transport = self.serve("ws://127.0.0.1:0?origin=*.good.example")
        proto.dataReceived(_upgrade_request(extra="Origin: http://x.good.example"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101"))

    def test_text_message_1003(self) -> None:
        """A text message ends the link with Close 1003 and Go's reason."""
        proto, transport = self.serve()
        proto.dataReceived(_upgrade_request())
        transport.clear()
        proto.dataReceived(_client_frame(1, b"hello"))
        [(opcode, payload)] = _server_frames(transport.value())
        self.assertEqual(opcode, 8)
        self.assertEqual(payload[:2], (1003).to_bytes(2, "big"))
        self.assertIn(b"expected MessageBinary", payload)

    def test_connection_bound(self) -> None:
        """Past MAX_WS_CONNECTIONS open connections, an upgrade is refused with 503."""
        endpoint = WebSocketServerEndpoint(None, parse_listen_uri("ws://127.0.0.1:0"), handshake_timeout=0)  # type: ignore[arg-type]
        factory = endpoint.factory_for(self.link_factory)
        factory.countConnections = MAX_WS_CONNECTIONS
        proto = factory.buildProtocol(PEER)
        transport = _Transport(peerAddress=PEER)
        proto.makeConnection(transport)
        proto.dataReceived(_upgrade_request())
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 503"), transport.value()[:30])
        self.assertEqual(self.cores, [])

    def test_oversized_message(self) -> None:
        """A message larger than MAX_WS_MESSAGE ends the connection (the bound holds)."""
        proto, transport = self.serve()
        proto.dataReceived(_upgrade_request())
        transport.clear()
        n = MAX_WS_MESSAGE + 1
        proto.dataReceived(b"\x82\xff" + n.to_bytes(8, "big") + b"\x00\x00\x00\x00" + b"\x00" * 100)
        frames = _server_frames(transport.value())
        self.assertEqual(frames[-1][0], 8)
        self.assertEqual(frames[-1][1][:2], (1009).to_bytes(2, "big"))


class InboundIdentityTests(SynchronousTestCase):
    def test_listener_path_kept(self) -> None:
        """An inbound ws link is ws://ip:port plus the listener's own path, if it has one."""
        from axl.link.peers import PeerManager

        manager = PeerManager(identity(1), Clock())
        for listen, expected in (("ws://127.0.0.1:0", "ws://10.0.0.2:5555"),
                                 ("ws://127.0.0.1:0/ygg", "ws://10.0.0.2:5555/ygg")):  # fmt: skip
            core = manager._accept(parse_listen_uri(listen), PEER)
            assert core is not None
            self.assertEqual(core.uri, expected)


class OriginTests(SynchronousTestCase):
    def test_patterns(self) -> None:
        """The origin= table of extras 4.1."""
        patterns = ("*.good.example", "https://exact.example")
        cases = {
            "http://x.good.example": True, "https://exact.example": True,
            "http://exact.example": False, "http://good.example": False,
        }  # fmt: skip
        for origin, ok in cases.items():
            with self.subTest(origin=origin):
                self.assertEqual(origin_allowed(origin, "h:1", patterns), ok)
        self.assertTrue(origin_allowed("http://H:1", "h:1", ()))
        self.assertTrue(origin_allowed("http://any", "h:1", ("*",)))


class ClientTests(SynchronousTestCase):
    def test_request(self) -> None:
        """The dialer sends the URI's path and whole query with subprotocol ygg-ws, version 13."""
        endpoint = WebSocketClientEndpoint(None, parse_peer_uri("ws://[::1]:19415/ygg/path?priority=2&foo=bar"),  # type: ignore[arg-type]
                                           handshake_timeout=0)  # fmt: skip
        proto = endpoint.factory_for(LinkFactory(lambda a: None)).buildProtocol(PEER)
        transport = _Transport(peerAddress=PEER)
        proto.makeConnection(transport)
        head = transport.value().decode()
        self.assertTrue(head.startswith("GET /ygg/path?priority=2&foo=bar HTTP/1.1\r\n"), head)
        self.assertIn("Sec-WebSocket-Protocol: ygg-ws\r\n", head)
        self.assertIn("Sec-WebSocket-Version: 13\r\n", head)

    def test_dialer_frames(self) -> None:
        """After the 101, the dialer's first message is the 123-byte meta in one masked binary
        frame (FIN set), and the link core is up to the handshake (extras 4.3, 8.15)."""
        clock = Clock()
        core = make_core(identity(2), clock)
        endpoint = WebSocketClientEndpoint(None, parse_peer_uri("ws://h:1/p"), handshake_timeout=0)  # type: ignore[arg-type]
        factory = endpoint.factory_for(LinkFactory(lambda a: core))
        opened: Deferred[Any] = Deferred()
        factory.opened = opened
        proto = factory.buildProtocol(PEER)
        transport = _Transport(peerAddress=PEER)
        proto.makeConnection(transport)
        key = [line.split(": ", 1)[1] for line in transport.value().decode().split("\r\n")
               if line.lower().startswith("sec-websocket-key:")][0]  # fmt: skip
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        transport.clear()
        proto.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: ygg-ws\r\n\r\n")  # fmt: skip
        self.assertIs(self.successResultOf(opened).core, core)
        frame = transport.value()
        self.assertEqual(frame[0], 0x82)  # FIN, binary
        self.assertEqual(frame[1], 0x80 | 123)  # masked, 123 bytes
        mask, payload = frame[2:6], frame[6:]
        self.assertEqual(bytes(b ^ mask[i % 4] for i, b in enumerate(payload)), core._meta)

    def test_link_flow_control(self) -> None:
        """
        The link registers as the producer of the WebSocket's underlying transport; when that
        transport's buffer fills, the link stops reading it and counts what it writes.
        """
        from axl.link.meta import encode_meta
        from axl.link.protocol import LinkProtocol
        from axl.link.ws import WebSocketLinkTransport

        class FakeWebSocket:
            def __init__(self) -> None:
                self.transport = StringTransport()
                self.sent: list[bytes] = []

            def sendMessage(self, data: bytes, isBinary: bool) -> None:
                self.sent.append(data)

        clock = Clock()
        ws = FakeWebSocket()
        core = make_core(identity(1), clock, RecordingHandler())
        proto = LinkProtocol(core)
        proto.makeConnection(WebSocketLinkTransport(ws))
        proto.dataReceived(encode_meta(identity(2)))
        self.assertIs(ws.transport.producer, proto)
        ws.transport.producer.pauseProducing()
        self.assertEqual(ws.transport.producerState, "paused")
        core.send_frame(9, b"x" * 1000)
        self.assertEqual(core.blocked_bytes, 1003)
        ws.transport.producer.resumeProducing()
        self.assertEqual((ws.transport.producerState, core.blocked_bytes), ("producing", 0))

    def test_link_over_iosim(self) -> None:
        """Client and server endpoints in memory: both links come up, frames cross both ways,
        and closing one side takes both down with a clean close."""
        clock = Clock()
        server_h, client_h = RecordingHandler(), RecordingHandler()
        server_core = make_core(identity(1), clock, server_h, inbound=True)
        client_core = make_core(identity(2), clock, client_h)
        sf = WebSocketServerEndpoint(None, parse_listen_uri("ws://127.0.0.1:0"), 0).factory_for(  # type: ignore[arg-type]
            LinkFactory(lambda a: server_core))
        cf = WebSocketClientEndpoint(None, parse_peer_uri("ws://127.0.0.1:1/x"), 0).factory_for(  # type: ignore[arg-type]
            LinkFactory(lambda a: client_core))
        opened: Deferred[Any] = Deferred()
        cf.opened = opened
        _, _, pump = connectedServerAndClient(lambda: sf.buildProtocol(PEER), lambda: cf.buildProtocol(PEER),
                                              clock=clock)  # fmt: skip
        pump.flush()
        self.assertIs(self.successResultOf(opened).core, client_core)
        self.assertTrue(server_core.is_up and client_core.is_up)
        client_core.send_frame(5, b"x" * 5000)
        pump.flush()
        self.assertEqual(server_h.frames(), [(5, b"x" * 5000)])
        server_core.close("test")
        pump.flush()
        self.assertIs(client_core.state, LinkState.CLOSED)
        self.assertEqual(client_core.last_error, "")


class WebSocketSendTests(InProcessNodesTestCase):
    timeout = 240

    @inlineCallbacks
    def test_ws_send(self) -> Any:
        """16 MiB /send from B to A whose only link is ws:// (B dials a path with a query)."""
        port = free_port()
        a = self.start_node("A", {"Listen": [f"ws://127.0.0.1:{port}"]})
        b = self.start_node("B", {"Peers": [f"ws://127.0.0.1:{port}/ygg?foo=1"]})
        yield assert_link_and_bulk(self, a, b, "ws")
