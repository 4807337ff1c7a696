# -*- test-case-name: tests.test_forward_e2e -*-
"""
Forwards between two whole nodes in this process (real reactor, 127.0.0.1 and unix sockets in
temp dirs): A listens, B peers to A. A exposes local services with C{remote_tcp}; B runs the
SOCKS5 proxy and C{local_tcp} forwards. Real time, every wait bounded.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
import struct
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from axl.crypto.address import addr_for_key
from axl.forward.proxy_v2 import decode_proxy_v2
from axl.forward.socks import ATYP_DOMAIN, ATYP_IPV6
from axl.node import Node
from axl.config import config_from_dict
from axl.errors import StartupError
from axl.service import make_node_service
from tests.inprocess import InProcessNodesTestCase
from tests.test_e2e_twistd import free_port
from tests.vectors import identity

MiB = 1024 * 1024
WAIT = 30.0


class Echo(Resource):
    """GET: a short greeting; POST: the body back."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello from A"

    def render_POST(self, request: Any) -> bytes:
        return request.content.read()  # type: ignore[no-any-return]


@implementer(IHalfCloseableProtocol)
class Client(Protocol):
    """
    A client that optionally speaks SOCKS5 first (greeting and request pipelined), then
    collects everything; C{reply} fires with the SOCKS reply code (0 without SOCKS), C{closed}
    with the loss reason.
    """

    def __init__(self, socks_request: bytes | None = None, send: bytes = b"", half_close: bool = False) -> None:
        self.socks_request, self.send, self.half_close = socks_request, send, half_close
        self.buf = bytearray()
        self.data = bytearray()
        self.reply: Deferred[int] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self.eof = False
        self._socks = socks_request is not None

    def connectionMade(self) -> None:
        if self.socks_request is not None:
            self.transport.write(b"\x05\x01\x00" + self.socks_request)  # type: ignore[union-attr]
        else:
            self._start()

    def _start(self) -> None:
        self._socks = False
        if not self.reply.called:
            self.reply.callback(0)
        if self.send:
            self.transport.write(self.send)  # type: ignore[union-attr]
        if self.half_close:
            self.transport.loseWriteConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if not self._socks:
            self.data += data
            return
        self.buf += data
        if len(self.buf) < 6:
            return
        size = 2 + 4 + (16 if self.buf[5] == 4 else 4) + 2
        if len(self.buf) < size:
            return
        code = self.buf[3]
        rest = bytes(self.buf[size:])
        self.reply.callback(code)
        if code == 0:
            self._start()
            self.data += rest

    def readConnectionLost(self) -> None:
        self.eof = True
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        if not self.reply.called:
            self.reply.errback(reason)
        self.reason = reason
        self.closed.callback(None)


def socks_request(atyp: int, host: bytes, port: int) -> bytes:
    if atyp == ATYP_DOMAIN:
        host = bytes((len(host),)) + host
    return bytes((5, 1, 0, atyp)) + host + struct.pack("!H", port)


def key_name(node: Node) -> bytes:
    return node.public_key.hex().encode() + b".pk.ygg"


def http_body(data: bytes) -> bytes:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data[:200]
    return body


class ProxyHeaderServer(Protocol):
    """Parses a PROXY v2 header and answers with the caller's key and address, then closes."""

    def __init__(self) -> None:
        self.buf = b""

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        parsed = decode_proxy_v2(self.buf)
        if parsed is None:
            return
        header, used = parsed
        assert header.source is not None and header.yggdrasil_key is not None
        source = ipaddress.IPv6Address(header.source[0])
        self.transport.write(f"{header.yggdrasil_key.hex()} {source} {header.source[1]} "  # type: ignore[union-attr]
                             f"{header.destination[1] if header.destination else 0}".encode())  # fmt: skip
        self.transport.loseConnection()  # type: ignore[union-attr]


@implementer(IHalfCloseableProtocol)
class HalfCloseEcho(Protocol):
    """Echoes; on EOF from the client, closes after echoing (a half-close round trip)."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        pass


class Resetter(Protocol):
    """Resets the connection (SO_LINGER 0) as soon as a byte arrives."""

    def dataReceived(self, data: bytes) -> None:
        sock = self.transport.getHandle()  # type: ignore[union-attr]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abortConnection()  # type: ignore[union-attr]


@implementer(IPushProducer)
class Source(Protocol):
    """Writes C{total} bytes of a pattern as a push producer, counting what it produced."""

    CHUNK = 256 * 1024

    def __init__(self, total: int) -> None:
        self.total, self.produced, self.paused, self.was_paused = total, 0, False, False

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self.paused = self.was_paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.produced < self.total:
            n = min(self.CHUNK, self.total - self.produced)
            self.produced += n
            self.transport.write(pattern(self.produced - n, n))  # type: ignore[union-attr]
        if self.produced >= self.total and not self.paused:
            self.transport.unregisterProducer()  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]
            self.produced += 1  # never again

    def stopProducing(self) -> None:
        self.paused = True


class Sink(Protocol):
    """Counts and checks what arrives; may start paused."""

    def __init__(self, start_paused: bool = False) -> None:
        self.received, self.ok, self.start_paused = 0, True, start_paused
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        if self.start_paused:
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if data != pattern(self.received, len(data)):
            self.ok = False
        self.received += len(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.closed.callback(None)


_BLOCK = hashlib.sha256(b"axl").digest() * 8192  # 256 KiB


def pattern(offset: int, n: int) -> bytes:
    """n bytes of a repeating pattern starting at C{offset}."""
    start = offset % len(_BLOCK)
    out = _BLOCK[start:] + _BLOCK * (n // len(_BLOCK) + 1)
    return out[:n]


class ForwardsEndToEndTests(InProcessNodesTestCase):
    """SOCKS, local_tcp, remote_tcp, unix sockets and PROXY v2 between two in-process nodes."""

    timeout = 120

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="axl-fwd-")  # short: unix socket paths are limited
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def listen_kernel(self, factory: Factory) -> int:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    def pair(self, a_config: dict[str, Any], b_config: dict[str, Any]) -> tuple[Node, Node]:
        listen = f"tcp://127.0.0.1:{free_port()}"
        a = self.start_node("A", {"Listen": [listen], **a_config})
        b = self.start_node("B", {"Peers": [listen], **b_config})
        return a, b

    def first_port(self, node: Node) -> int:
        """The local port of the node's first forward (SOCKS, else the first local_tcp)."""
        return int(node.forwards.ports[0].getHost().port)  # type: ignore[attr-defined]

    async def connect(self, endpoint: Any, client: Client, retry: bool = True) -> Client:
        """Connect and wait for the SOCKS reply; retry while the mesh is still settling."""
        waited = 0.0
        while True:
            fresh = Client(client.socks_request, client.send, client.half_close)
            proto = await connectProtocol(endpoint, fresh)
            try:
                code = await proto.reply
            except Exception:
                code = -1
            if code == 0 or not retry or waited >= WAIT:
                return proto
            await proto.closed
            await deferLater(reactor, 0.25, lambda: None)  # type: ignore[arg-type]
            waited += 0.25

    def logged(self, text: str) -> bool:
        return any(text in formatEvent(e) for e in self.events)

    # ---- SOCKS ------------------------------------------------------------------------------

    def test_socks_http_16mib_each_way(self) -> Deferred[None]:
        """
        A SOCKS client on B reaches a twisted.web server exposed by A with remote_tcp (by
        <key>.pk.ygg): a 16 MiB POST comes back as a 16 MiB response, intact.
        """
        return ensureDeferred(self._socks_http())

    async def _socks_http(self) -> None:
        web = self.listen_kernel(Site(Echo()))
        a, b = self.pair({"remote_tcp": [f"80:127.0.0.1:{web}"]}, {"socks": "127.0.0.1:0"})
        body = os.urandom(16 * MiB)
        request = (b"POST / HTTP/1.0\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.first_port(b))
        client = await self.connect(endpoint, Client(socks_request(ATYP_DOMAIN, key_name(a), 80), request))
        self.assertEqual(await client.reply, 0)
        await client.closed
        assert client.reason is not None
        self.assertTrue(client.reason.check(ConnectionDone), client.reason)
        got = http_body(bytes(client.data))
        self.assertEqual(len(got), len(body))
        self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(body).digest())

    def test_curl_through_socks(self) -> Deferred[None]:
        """curl --socks5-hostname through B's proxy gets A's page by <key>.pk.ygg and by [address]."""
        if shutil.which("curl") is None:
            self.skipTest("curl is not installed")
        return ensureDeferred(self._curl())

    async def _curl(self) -> None:
        web = self.listen_kernel(Site(Echo()))
        a, b = self.pair({"remote_tcp": [f"80:127.0.0.1:{web}"]}, {"socks": "127.0.0.1:0"})
        proxy = f"127.0.0.1:{self.first_port(b)}"
        address = ipaddress.IPv6Address(addr_for_key(a.public_key))
        for url in (f"http://{a.public_key.hex()}.pk.ygg/", f"http://[{address}]/"):
            out, err, code = b"", b"", -1
            for _ in range(20):
                out, err, code = await getProcessOutputAndValue(
                    "curl", ["-sS", "--max-time", "15", "--socks5-hostname", proxy, url], env=dict(os.environ))
                if code == 0:
                    break
                await deferLater(reactor, 0.5, lambda: None)  # type: ignore[arg-type]
            self.assertEqual((code, out), (0, b"hello from A"), err)

    def test_socks_by_address_and_refused(self) -> Deferred[None]:
        """
        CONNECT by A's IPv6 address works (the key is looked up); CONNECT to a port A does not
        listen on is answered 05 (connection refused) at once, and the refusal is logged.
        """
        return ensureDeferred(self._socks_address())

    async def _socks_address(self) -> None:
        web = self.listen_kernel(Site(Echo()))
        a, b = self.pair({"remote_tcp": [f"80:127.0.0.1:{web}"]}, {"socks": "127.0.0.1:0"})
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.first_port(b))
        addr = addr_for_key(a.public_key)
        client = await self.connect(endpoint, Client(socks_request(ATYP_IPV6, addr, 80),
                                                     b"GET / HTTP/1.0\r\n\r\n"))  # fmt: skip
        self.assertEqual(await client.reply, 0)
        await client.closed
        self.assertEqual(http_body(bytes(client.data)), b"hello from A")
        refused = await self.connect(endpoint, Client(socks_request(ATYP_IPV6, addr, 81)), retry=False)
        self.assertEqual(await refused.reply, 5)
        await refused.closed
        self.assertTrue(self.logged("failed"))

    # ---- local_tcp / remote_tcp, unix sockets, PROXY v2 ----------------------------------------

    def test_unix_sockets_both_sides(self) -> Deferred[None]:
        """
        B's local_tcp listens on a unix socket and forwards to A's remote_tcp, which forwards to
        a web server on a unix socket: a GET and a 4 MiB POST work end to end.
        """
        return ensureDeferred(self._unix())

    async def _unix(self) -> None:
        web_path = os.path.join(self.tmp, "web.sock")
        port = reactor.listenUNIX(web_path, Site(Echo()))  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        local_path = os.path.join(self.tmp, "b.sock")
        a = self.start_node("A", {"Listen": [listen := f"tcp://127.0.0.1:{free_port()}"],
                                  "remote_tcp": [f"81:unix:{web_path}"]})  # fmt: skip
        self.start_node("B", {"Peers": [listen], "local_tcp": [f"unix:{local_path}:{a.public_key.hex()}.pk.ygg:81"]})
        self.assertEqual(os.stat(local_path).st_mode & 0o777, 0o600)
        body = os.urandom(4 * MiB)
        request = (b"POST / HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        client = await self.until_answered(UNIXClientEndpoint(reactor, local_path), request)
        self.assertEqual(http_body(bytes(client.data)), body)

    def test_proxy_v2_names_caller(self) -> Deferred[None]:
        """
        remote_tcp with ?proxy=v2: the local service gets a PROXY v2 header whose source is B's
        Yggdrasil address and overlay port, destination port 82, and TLV 0xE0 = B's full key.
        """
        return ensureDeferred(self._proxy())

    async def _proxy(self) -> None:
        server = self.listen_kernel(Factory.forProtocol(ProxyHeaderServer))
        a_key = identity("A").public_key.hex()
        a, b = self.pair({"remote_tcp": [f"82:127.0.0.1:{server}?proxy=v2"]},
                         {"local_tcp": [f"127.0.0.1:0:{a_key}.pk.ygg:82"]})  # fmt: skip
        client = await self.until_answered(TCP4ClientEndpoint(reactor, "127.0.0.1", self.first_port(b)), b"")
        key, source, sport, dport = client.data.decode().split()
        self.assertEqual(key, b.public_key.hex())
        self.assertEqual(source, str(ipaddress.IPv6Address(addr_for_key(b.public_key))))
        self.assertTrue(49152 <= int(sport) <= 65535)
        self.assertEqual(dport, "82")

    async def until_answered(self, endpoint: Any, send: bytes, half_close: bool = False) -> Client:
        """Connect (no SOCKS) until a connection brings data back (the mesh may be settling)."""
        client = Client()
        for _ in range(int(WAIT / 0.5)):
            client = await connectProtocol(endpoint, Client(None, send, half_close))
            await client.closed
            if client.data:
                break
            await deferLater(reactor, 0.5, lambda: None)  # type: ignore[arg-type]
        return client

    # ---- limits: backpressure, caps, idle, close and reset mapping -------------------------------

    async def settle(self, endpoint: Any) -> None:
        """Wait until a forward through C{endpoint} carries an echo (the mesh has settled)."""
        client = await self.until_answered(endpoint, b"ping", half_close=True)
        self.assertEqual(bytes(client.data), b"ping")

    async def stalled(self, counter: Any) -> int:
        """Wait until C{counter()} stops growing for a second (at most WAIT); return it."""
        last, still = -1, 0.0
        for _ in range(int(WAIT / 0.25)):
            now = counter()
            if now == last:
                still += 0.25
                if still >= 1.0:
                    break
            else:
                still = 0.0
            last = now
            await deferLater(reactor, 0.25, lambda: None)  # type: ignore[arg-type]
        return int(last)

    async def settled_forward(self, factory: Factory) -> TCP4ClientEndpoint:
        """
        A serves C{factory} (and an echo) with remote_tcp, B forwards a local port to each; once
        the echo answers through B, return the endpoint of B's port for C{factory}.
        """
        echo = self.listen_kernel(Factory.forProtocol(HalfCloseEcho))
        served = self.listen_kernel(factory)
        a_key = identity("A").public_key.hex()
        a, b = self.pair({"remote_tcp": [f"90:127.0.0.1:{echo}", f"91:127.0.0.1:{served}"]},
                         {"local_tcp": [f"0:{a_key}.pk.ygg:90", f"0:{a_key}.pk.ygg:91"]})  # fmt: skip
        ports = [int(p.getHost().port) for p in b.forwards.ports]  # type: ignore[attr-defined]
        await self.settle(TCP4ClientEndpoint(reactor, "127.0.0.1", ports[0]))
        return TCP4ClientEndpoint(reactor, "127.0.0.1", ports[1])

    def test_backpressure_overlay_to_local(self) -> Deferred[None]:
        """
        A local client on B that does not read pauses the service on A: of 64 MiB offered, the
        service stops producing while far less than all of it is in flight, and its producer is
        paused; once the client reads, all 64 MiB arrive intact.
        """
        return ensureDeferred(self._backpressure_down())

    async def _backpressure_down(self) -> None:
        sources: list[Source] = []
        total = 64 * MiB

        def source() -> Protocol:
            sources.append(Source(total))
            return sources[-1]

        bulk = await self.settled_forward(Factory.forProtocol(source))
        sink = await connectProtocol(bulk, Sink(start_paused=True))
        produced = await self.stalled(lambda: sources[0].produced if sources else 0)
        self.assertTrue(sources[0].was_paused)
        self.assertLess(produced, 40 * MiB)
        sink.transport.resumeProducing()  # type: ignore[union-attr]
        await sink.closed
        self.assertEqual((sink.received, sink.ok), (total, True))

    def test_backpressure_local_to_overlay(self) -> Deferred[None]:
        """
        A service on A that does not read pauses the local client on B: the client's producer
        is paused with far less than 64 MiB sent; once the service reads, all of it arrives.
        """
        return ensureDeferred(self._backpressure_up())

    async def _backpressure_up(self) -> None:
        sinks: list[Sink] = []

        def sink() -> Protocol:
            sinks.append(Sink(start_paused=True))
            return sinks[-1]

        slow = await self.settled_forward(Factory.forProtocol(sink))
        total = 64 * MiB
        source = await connectProtocol(slow, Source(total))
        produced = await self.stalled(lambda: source.produced)
        self.assertTrue(source.was_paused)
        self.assertLess(produced, 40 * MiB)
        self.assertEqual(len(sinks), 1)
        sinks[0].transport.resumeProducing()  # type: ignore[union-attr]
        await sinks[0].closed
        self.assertEqual((sinks[0].received, sinks[0].ok), (total, True))

    def test_cap_idle_half_close_reset(self) -> Deferred[None]:
        """
        One forward with max_conns=1 and idle=1: a second connection is refused and logged; the
        first is closed after a second of silence (logged); a half-close round trip keeps the
        reply; a service that resets makes the client see a reset; a forward to a port nobody
        listens on resets the client and logs the failure.
        """
        return ensureDeferred(self._limits())

    async def _limits(self) -> None:
        echo = self.listen_kernel(Factory.forProtocol(HalfCloseEcho))
        resetter = self.listen_kernel(Factory.forProtocol(Resetter))
        a_key = identity("A").public_key.hex()
        a, b = self.pair(
            {"remote_tcp": [f"90:127.0.0.1:{echo}?max_conns=1&idle=1", f"92:127.0.0.1:{resetter}"]},
            {"local_tcp": [f"0:{a_key}.pk.ygg:90", f"0:{a_key}.pk.ygg:92", f"0:{a_key}.pk.ygg:93"]},
        )
        ports = [int(p.getHost().port) for p in b.forwards.ports]  # type: ignore[attr-defined]
        echo_ep = TCP4ClientEndpoint(reactor, "127.0.0.1", ports[0])
        # half-close: the client's FIN reaches the echo service, which answers then closes
        await self.settle(echo_ep)
        # cap: hold one connection open, a second one is refused by A
        first = await connectProtocol(echo_ep, Client(None, b"x"))
        for _ in range(40):
            if first.data:
                break
            await deferLater(reactor, 0.1, lambda: None)  # type: ignore[arg-type]
        self.assertEqual(bytes(first.data), b"x")
        second = await connectProtocol(echo_ep, Client(None, b"y"))
        await second.closed
        self.assertEqual(bytes(second.data), b"")
        self.assertTrue(self.logged("max_conns"))
        # idle: the first connection is closed after about a second without traffic
        await first.closed
        self.assertTrue(self.logged("idle for 1 s"))
        # reset mapping: the service's RST reaches the client as a reset
        reset = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", ports[1]), Client(None, b"boom"))
        await reset.closed
        assert reset.reason is not None
        self.assertFalse(reset.reason.check(ConnectionDone), reset.reason)
        # nobody on overlay port 93: the client is reset and the failure logged
        nobody = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", ports[2]), Client(None, b"hi"))
        await nobody.closed
        assert nobody.reason is not None
        self.assertFalse(nobody.reason.check(ConnectionDone), nobody.reason)
        self.assertTrue(self.logged("failed: Connection was refused"))

    # ---- UDP ------------------------------------------------------------------------------------

    def test_udp_round_trip_and_idle(self) -> Deferred[None]:
        """
        A datagram to B's local_udp port reaches a UDP echo service behind A's remote_udp and
        the echo comes back to the sender; after idle seconds both flows are forgotten.
        """
        return ensureDeferred(self._udp())

    async def _udp(self) -> None:
        echo = reactor.listenUDP(0, UDPEcho(), interface="127.0.0.1", maxPacketSize=65535)  # type: ignore[attr-defined]
        self.addCleanup(echo.stopListening)
        a_key = identity("A").public_key.hex()
        a, b = self.pair({"remote_udp": [f"5353:127.0.0.1:{echo.getHost().port}?idle=1"]},
                         {"local_udp": [f"0:{a_key}.pk.ygg:5353?idle=1"]})  # fmt: skip
        local_port = self.first_port(b)
        client = UDPClient()
        port = reactor.listenUDP(0, client, interface="127.0.0.1", maxPacketSize=65535)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        payload = os.urandom(60000)
        for _ in range(int(WAIT / 0.25)):
            port.write(payload, ("127.0.0.1", local_port))
            await deferLater(reactor, 0.25, lambda: None)  # type: ignore[arg-type]
            if client.received:
                break
        self.assertEqual(client.received[0], payload)
        [local] = b.forwards.udp  # type: ignore[attr-defined]
        [remote] = a.forwards.udp  # type: ignore[attr-defined]
        self.assertEqual((len(local.flows.flows), len(remote.flows.flows)), (1, 1))
        for _ in range(int(WAIT / 0.25)):
            await deferLater(reactor, 0.25, lambda: None)  # type: ignore[arg-type]
            if not local.flows.flows and not remote.flows.flows:
                break
        self.assertEqual((local.flows.flows, remote.flows.flows), ({}, {}))


class UDPEcho(DatagramProtocol):
    """Sends every datagram back."""

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.transport.write(data, addr)  # type: ignore[union-attr]


class UDPClient(DatagramProtocol):
    """Collects datagrams."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append(data)


class OverlayPortTakenTests(InProcessNodesTestCase):
    """A forward whose overlay port is taken stops the start, naming the key and the file."""

    def start_fails(self, config: dict[str, Any]) -> str:
        top = make_node_service(config_from_dict({**config, "api_port": free_port()}, source="c.json"),
                                reactor, identity=identity("A"))  # fmt: skip
        try:
            with self.assertRaises(StartupError) as cm:
                top.startService()
        finally:
            self.addCleanup(top.stopService)
        return str(cm.exception)

    def test_remote_tcp_on_the_message_port(self) -> None:
        """remote_tcp on tcp_port (the message listener's overlay port) cannot listen."""
        error = self.start_fails({"remote_tcp": ["7000:127.0.0.1:1"]})
        self.assertEqual(error, "cannot listen on overlay port 7000 for remote_tcp overlay port 7000 -> "
                                "127.0.0.1:1 (port already in use); change remote_tcp in c.json")  # fmt: skip

    def test_remote_udp_twice(self) -> None:
        """Two remote_udp forwards on one overlay port: the second cannot listen."""
        error = self.start_fails({"remote_udp": ["53:127.0.0.1:1", "53:127.0.0.1:2"]})
        self.assertIn("cannot listen on overlay UDP port 53 for remote_udp overlay port 53 -> 127.0.0.1:2", error)
        self.assertIn("already bound); change remote_udp in c.json", error)
