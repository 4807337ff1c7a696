# -*- test-case-name: tests.test_config_keys -*-
"""
Every node config key changes what the node does (issue 11, item 1): for each key of
L{axl.config.NODE_KEYS} one row builds the parts through the node's own wiring
(L{axl.service.make_node_service}, or its L{build_streams_layer} / L{build_bridge} steps) with the
default and with a non-default value, and observes the behaviour (not the parsed value): a key
that is parsed but silently replaced by its default makes its row fail. A key added to
C{NODE_KEYS} without a row fails L{CoverageTests}.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from axl.bridge.topology import topology_document
from axl.config import NODE_KEYS, config_from_dict
from axl.crypto.keys import Identity
from axl.service import build_bridge, make_node_service
from axl.streams.framing import acknowledged_port, encode_message
from axl.streams.listener import AcknowledgedMessageFactory
from axl.streams.service import build_streams_layer
from axl.session.proto import NODEINFO_REQUEST
from tests.test_identity import pem_of_seed
from tests.streams_helpers import FakeHTTPServer, MemoryNet
from tests.test_bridge_messaging import Services, _NoPeers

A_ID, B_ID, C_KEY = Identity(b"\x01" * 32), Identity(b"\x02" * 32), b"\x09" * 32
LIST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
INIT = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}).encode()
#: B runs a router and an A2A server in every row unless the row says otherwise.
B_SERVICES = {"router_addr": "http://127.0.0.1", "a2a_addr": "http://127.0.0.1"}


class RecordingHTTP:
    """The streams' HTTP client: records each URL, then serves it from the fake services."""

    def __init__(self, services: Services) -> None:
        self.stub = StubTreq(services)
        self.urls: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        self.urls.append(url)
        return self.stub.request(method, url, **kwargs)

    def flush(self) -> None:
        self.stub.flush()


@dataclass
class Node:
    key: bytes
    layer: Any
    client: StubTreq
    services: Services
    http: RecordingHTTP


@dataclass
class Pair:
    """Nodes A and B built with the node's wiring, on in-memory overlay connections."""

    a_config: dict[str, Any]
    b_config: dict[str, Any]
    clock: Clock = field(default_factory=Clock)
    net: MemoryNet = field(default_factory=MemoryNet)
    headers: Any = None  # of the last answered request

    def __post_init__(self) -> None:
        self.a = self._node(A_ID, self.a_config)
        self.b = self._node(B_ID, {**B_SERVICES, **self.b_config})

    def _node(self, identity: Identity, data: dict[str, Any]) -> Node:
        config = config_from_dict(data)
        services = Services()
        http = RecordingHTTP(services)
        layer = build_streams_layer(
            config, identity.public_key, self.clock, self.net.dial_from(identity.public_key), http,
            plugin_streams=[],
        )  # fmt: skip
        bridge = build_bridge(config, self.clock, layer, partial(topology_document, identity, _NoPeers(), _NoPeers()))
        self.net.listen(identity.public_key, config.tcp_port, layer.factory)
        self.net.listen(
            identity.public_key, acknowledged_port(config.tcp_port), AcknowledgedMessageFactory(layer.factory)
        )
        return Node(identity.public_key, layer, StubTreq(bridge.app.resource()), services, http)

    def settle(self) -> None:
        for _ in range(20):
            self.net.flush()
            for node in (self.a, self.b):
                node.http.flush()
                node.client.flush()

    def request(self, node: Node, method: str, path: str, headers: dict[str, str] | None = None,
                data: bytes | None = None) -> Deferred[Any]:  # fmt: skip
        d = node.client.request(method, "http://127.0.0.1:9002" + path, headers=headers or {}, data=data)
        self.settle()
        return d

    def answer(self, d: Deferred[Any]) -> tuple[int, bytes] | None:
        """(status, body) of a finished request, None while it is unanswered."""
        self.settle()
        results: list[Any] = []
        d.addBoth(results.append)
        if not results:
            return None
        response = results[0]
        assert not isinstance(response, Failure), response
        self.headers = response.headers
        body: list[bytes] = []
        response.content().addCallback(body.append)
        self.settle()
        return response.code, body[0]

    def send(self, payload: bytes, to: bytes | None = None) -> Deferred[Any]:
        dest = (to or self.b.key).hex()
        return self.request(self.a, "POST", "/send", {"X-Destination-Peer-Id": dest}, payload)

    def mcp(self, body: bytes = LIST, headers: dict[str, str] | None = None) -> Deferred[Any]:
        return self.request(self.a, "POST", f"/mcp/{self.b.key.hex()}/weather",
                            {"Content-Type": "application/json", **(headers or {})}, body)  # fmt: skip

    def raw(self, port: int = 7000, src: bytes = C_KEY) -> Any:
        """A raw inbound connection to B's port from C{src}; its client-side transport."""
        proto = Protocol()
        self.net.connect(src, self.b.key, port, _Once(proto))
        self.net.flush()
        return proto.transport

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.settle()


class _Once:
    def __init__(self, proto: Protocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: object) -> Protocol:
        return self.proto


def status(d: Deferred[Any], pair: Pair) -> int | None:
    answer = pair.answer(d)
    return None if answer is None else answer[0]


# -- one observation per key: (config of A, config of B) -> what the node does -----------------


def queue_admits(a: dict[str, Any], b: dict[str, Any]) -> int:
    """How many of three 8-byte /send calls B accepts before its application reads /recv."""
    pair = Pair(a, b)
    ds = [pair.send(b"12345678") for _ in range(3)]
    return sum(status(d, pair) == 200 for d in ds)


def debug_logged(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether a debug event of an axl logger reaches the log once node A is built."""
    from twisted.logger import Logger, globalLogPublisher

    from axl.logs import observer, set_log_level

    seen: list[object] = []
    make_node_service(config_from_dict(a), MemoryReactorClock(), Identity.generate())
    globalLogPublisher.addObserver(seen.append)
    try:
        Logger(namespace="axl.test", observer=observer).debug("a debug line")
    finally:
        globalLogPublisher.removeObserver(seen.append)
        set_log_level("info")
    return bool(seen)


def slow_router_answered_by(seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Whether A's /mcp call to B, whose router never answers, is answered within C{seconds}."""
        pair = Pair(a, b)
        pair.b.services.router.answer = Deferred()
        d = pair.mcp()
        pair.advance(seconds)
        return pair.answer(d) is not None

    return observe


def mcp_error(a: dict[str, Any], b: dict[str, Any]) -> object:
    """The JSON-RPC error (or None) of A's /mcp call to B."""
    pair = Pair(a, b)
    answer = pair.answer(pair.mcp())
    assert answer is not None
    return json.loads(answer[1]).get("error")


def a2a_answer(a: dict[str, Any], b: dict[str, Any]) -> tuple[int, object] | None:
    """Status and error of A's /a2a call to B."""
    pair = Pair(a, b)
    answer = pair.answer(pair.request(pair.a, "POST", f"/a2a/{pair.b.key.hex()}", {}, LIST))
    assert answer is not None
    return answer[0], json.loads(answer[1]).get("error")


def second_connection_refused(same_peer: bool) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Whether a second inbound connection to B (same sender or another) is closed at once."""
        pair = Pair(a, b)
        first = pair.raw(src=C_KEY)
        second = pair.raw(src=C_KEY if same_peer else b"\x0a" * 32)
        return bool(second.closed and not first.closed)

    return observe


def closed_after(data: bytes, seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Whether B closes a connection that sent C{data}, C{seconds} later."""
        pair = Pair(a, b)
        t = pair.raw()
        t.write(data)
        pair.settle()
        pair.advance(seconds)
        return bool(t.closed)

    return observe


def dialled_ports(a: dict[str, Any], b: dict[str, Any]) -> list[int]:
    """The overlay ports on B that A's /send and /mcp dial, and whether both calls succeeded."""
    pair = Pair(a, b)
    ports: list[int] = []
    connect = pair.net.connect
    pair.net.connect = lambda src, dst, port, factory: (ports.append(port), connect(src, dst, port, factory))[1]  # type: ignore[method-assign]
    codes = [status(pair.send(b"x"), pair), status(pair.mcp(), pair)]
    assert codes == [200, 200], codes
    return ports


def rcv_budget_limit(a: dict[str, Any], b: dict[str, Any]) -> int:
    """The receive budget the whole node's overlay TCP stack enforces."""
    service = make_node_service(config_from_dict(a), MemoryReactorClock(), identity=A_ID)
    return int(service.node.tcp.rcv_budget.limit)


def tcp_port_use(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[int], list[int]]:
    """The overlay ports a whole node listens on, and the ports /send and /mcp dial on another node."""
    return listening_overlay_ports(a, b), dialled_ports(a, b)


def listening_overlay_ports(a: dict[str, Any], b: dict[str, Any]) -> list[int]:
    """The overlay TCP ports a whole node listens on once started."""
    service = make_node_service(config_from_dict(a), MemoryReactorClock(), identity=A_ID)
    service.startService()
    try:
        return sorted(service.node.tcp._listeners)
    finally:
        service.stopService()


class _UDPPort:
    def __init__(self, port: int, interface: str) -> None:
        self.port, self.interface = port, interface

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", self.interface, self.port)

    def stopListening(self) -> None:
        return None


class _Reactor(MemoryReactorClock):
    """A memory reactor that also records UDP binds."""

    def __init__(self) -> None:
        super().__init__()
        self.udp: list[int] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> _UDPPort:
        self.udp.append(port)
        return _UDPPort(port, interface)


def node_bindings(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[int], list[int], list[int], list[int]]:
    """What a started whole node listens on: local TCP and UDP ports, overlay TCP and UDP ports."""
    reactor = _Reactor()
    service = make_node_service(config_from_dict(a), reactor, identity=A_ID)
    service.startService()
    try:
        node = service.node
        assert node.overlay.udp is not None
        return (
            sorted(p for p, *_ in reactor.tcpServers), sorted(reactor.udp),
            sorted(node.tcp._listeners), sorted(node.overlay.udp._ports),
        )  # fmt: skip
    finally:
        service.stopService()


def full_receiver_send_status_after(seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], int | None]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> int | None:
        """The status of A's second /send to B (one-message queue, not drained) after C{seconds}."""
        pair = Pair(a, {"recv_queue_max_messages": 1, **b})
        pair.send(b"first")
        d = pair.send(b"second")
        pair.advance(seconds)
        return status(d, pair)

    return observe


def session_after(seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], int | None]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> int | None:
        """The status of an /mcp call with the session from initialize, C{seconds} after it."""
        pair = Pair(a, b)
        assert pair.answer(pair.mcp(INIT)) is not None
        sid = pair.headers.getRawHeaders("Mcp-Session-Id")[0]
        pair.advance(seconds)
        return status(pair.mcp(headers={"Mcp-Session-Id": sid}), pair)

    return observe


def long_poll_answered_after(seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], int | None]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> int | None:
        """The status of B's /recv?wait=100 after C{seconds} with nothing arriving (None: waiting)."""
        pair = Pair(a, b)
        d = pair.request(pair.b, "GET", "/recv?wait=100")
        pair.advance(seconds)
        return status(d, pair)

    return observe


def send_size_status(size: int) -> Callable[[dict[str, Any], dict[str, Any]], tuple[int | None, bytes]]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> tuple[int | None, bytes]:
        """Status and body of A's /send of C{size} bytes to B."""
        pair = Pair(a, b)
        answer = pair.answer(pair.send(b"s" * size))
        assert answer is not None
        return answer

    return observe


def bridge_binding(a: dict[str, Any], b: dict[str, Any]) -> tuple[int, str]:
    """(port, interface) the started node's bridge listens on."""
    reactor = MemoryReactorClock()
    service = make_node_service(config_from_dict(a), reactor, identity=A_ID)
    service.startService()
    try:
        [(port, _, _, interface)] = reactor.tcpServers
        return port, interface
    finally:
        service.stopService()


def service_urls(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The URLs B's streams call for an /mcp and an /a2a call from A."""
    pair = Pair(a, b)
    pair.answer(pair.mcp())
    pair.answer(pair.request(pair.a, "POST", f"/a2a/{pair.b.key.hex()}", {}, LIST))
    return pair.b.http.urls


def send_to_nobody_status_after(seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], int | None]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> int | None:
        """The status of a /send to a key nobody answers for, after C{seconds}."""
        pair = Pair(a, b)
        pair.net.black_holes.add(C_KEY)
        d = pair.send(b"x", to=C_KEY)
        pair.advance(seconds)
        return status(d, pair)

    return observe


def overlay_connect_failed_after(seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Whether a whole node's overlay TCP connect to an unknown key has failed after C{seconds}."""
        from twisted.internet.endpoints import connectProtocol

        from axl.tcp.endpoints import OverlayClientEndpoint

        reactor = MemoryReactorClock()
        service = make_node_service(config_from_dict(a), reactor, identity=A_ID)
        service.startService()
        try:
            d = connectProtocol(OverlayClientEndpoint(service.node.tcp, C_KEY, 7000), Protocol())
            failed: list[Failure] = []
            d.addErrback(failed.append)
            reactor.advance(seconds)
            return bool(failed)
        finally:
            service.stopService()

    return observe


def redial_waits_within_3s(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether a whole node's redial waits for a configured peer stay within 3 s over 8 failures in a row."""
    config = config_from_dict({"Peers": ["tcp://127.0.0.1:9"], **a})
    links = make_node_service(config, MemoryReactorClock(), identity=A_ID).node.links
    [entry] = links.entries()
    return max(links._next_delay(entry) for _ in range(8)) <= 3.0


def pooled_after(seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Whether A's /send connection to B is still open C{seconds} after the last message."""
        pair = Pair(a, b)
        pair.answer(pair.send(b"x"))
        pair.advance(seconds)
        return bool(pair.net.pairs)

    return observe


def _started_factories(a: dict[str, Any]) -> tuple[Any, MemoryReactorClock, dict[int, Any]]:
    """A whole node started on a memory reactor, and its TCP server factories by port."""
    reactor = MemoryReactorClock()
    service = make_node_service(config_from_dict(a), reactor, identity=A_ID)
    service.startService()
    return service, reactor, {port: factory for port, factory, _, _ in reactor.tcpServers}


def _connect(factory: Any, host: str = "10.0.0.1", port: int = 1) -> tuple[Any, Any]:
    from twisted.internet.testing import StringTransport

    proto = factory.buildProtocol(IPv4Address("TCP", host, port))
    if proto is None:
        return None, None
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    proto.makeConnection(transport)
    return proto, transport


def links_admitted(a: dict[str, Any], b: dict[str, Any]) -> int:
    """How many of 10 inbound peer connections from one address a whole node admits."""
    service, _, factories = _started_factories({"Listen": ["tcp://127.0.0.1:9555"], **a})
    try:
        return sum(_connect(factories[9555], port=i)[0] is not None for i in range(10))
    finally:
        service.stopService()


def links_up_with_one_key(a: dict[str, Any], b: dict[str, Any]) -> int:
    """How many of 3 inbound links with the same key (from 3 addresses) a whole node keeps up."""
    from axl.link.meta import encode_meta

    service, _, factories = _started_factories({"Listen": ["tcp://127.0.0.1:9555"], **a})
    try:
        for i in range(3):
            proto, _ = _connect(factories[9555], host=f"10.0.0.{i + 1}")
            proto.dataReceived(encode_meta(B_ID))
        return len(service.node.links.links())
    finally:
        service.stopService()


def traffic_dropped_while_blocked(a: dict[str, Any], b: dict[str, Any]) -> int:
    """Traffic frames of 10 KB (of 5) an up link drops while its transport's buffer is full."""
    from axl.link.meta import encode_meta

    service, _, factories = _started_factories({"Listen": ["tcp://127.0.0.1:9555"], **a})
    try:
        proto, _ = _connect(factories[9555])
        proto.dataReceived(encode_meta(B_ID))
        proto.pauseProducing()
        for _ in range(5):
            proto.core.send_frame(9, b"t" * 10_000)
        return int(proto.core.dropped_frames)
    finally:
        service.stopService()


def traffic_dropped_on_two_blocked_links(a: dict[str, Any], b: dict[str, Any]) -> int:
    """Traffic frames of 10 KB (3 each, 60 KB in all) two blocked up links drop together."""
    from axl.link.meta import encode_meta

    service, _, factories = _started_factories({"Listen": ["tcp://127.0.0.1:9555"], **a})
    try:
        protos = [_connect(factories[9555], host=f"10.0.0.{i + 1}")[0] for i in range(2)]
        for proto in protos:
            proto.dataReceived(encode_meta(B_ID))
            proto.pauseProducing()
            for _ in range(3):
                proto.core.send_frame(9, b"t" * 10_000)
        return sum(int(proto.core.dropped_frames) for proto in protos)
    finally:
        service.stopService()


def inbound_links_up(a: dict[str, Any], b: dict[str, Any]) -> int:
    """How many of 5 inbound links (5 addresses, 5 keys) a whole node keeps up at once."""
    from axl.link.meta import encode_meta

    service, _, factories = _started_factories({"Listen": ["tcp://127.0.0.1:9555"], **a})
    try:
        for i in range(5):
            proto, _ = _connect(factories[9555], host=f"10.0.0.{i + 1}")
            if proto is not None:
                proto.dataReceived(encode_meta(Identity(bytes([40 + i]) * 32)))
        return len(service.node.links.links())
    finally:
        service.stopService()


def bridge_closed_after(head: bytes, seconds: float) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Whether the bridge closes a connection that sent only C{head} within C{seconds}."""
        service, reactor, factories = _started_factories(a)
        try:
            proto, transport = _connect(factories[9002])
            proto.dataReceived(head)
            reactor.advance(seconds)
            return bool(transport.disconnecting)
        finally:
            service.stopService()

    return observe


def bridge_third_refused(request: bytes) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    def observe(a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Whether the bridge answers the third of three connections sending C{request} with 503."""
        service, _, factories = _started_factories(a)
        try:
            transports = []
            for i in range(3):
                proto, transport = _connect(factories[9002], port=i)
                proto.dataReceived(request)
                transports.append(transport)
            return b" 503 " in transports[2].value()
        finally:
            service.stopService()

    return observe


def notifications_accepted(a: dict[str, Any], b: dict[str, Any]) -> list[int | None]:
    """Statuses of 3 /mcp notifications from A to a key nobody answers for."""
    pair = Pair(a, b)
    pair.net.black_holes.add(C_KEY)
    note = json.dumps({"jsonrpc": "2.0", "method": "notifications/x"}).encode()
    return [status(pair.request(pair.a, "POST", f"/mcp/{C_KEY.hex()}/svc", {}, note), pair) for _ in range(3)]


def second_bulk_send_status(a: dict[str, Any], b: dict[str, Any]) -> int | None:
    """Status of the second of two 100 KB /send calls to a key nobody answers for (None: waiting)."""
    pair = Pair(a, b)
    pair.net.black_holes.add(C_KEY)
    pair.send(b"1" * 100_000, to=C_KEY)
    return status(pair.send(b"2" * 100_000, to=C_KEY), pair)


@dataclass(frozen=True)
class Row:
    """
    One key: A's and B's extra config with the non-default value, what is observed, and what it
    must be with the non-default value and with the default.
    """

    a: dict[str, Any]
    b: dict[str, Any]
    observe: Callable[[dict[str, Any], dict[str, Any]], object]
    changed: object
    default: object


OTHER = "ab" * 32  # a key that is neither A nor B
#: What a node listens on with no forwards: the bridge, and the message ports on the overlay.
BARE = ([9002], [], [7000, 7001], [])
OVERSIZE_TEXT = b"message of 11 bytes exceeds the receiver's max_message_size of 10 bytes\n"

ROWS: dict[str, Row] = {
    "log_level": Row({"log_level": "debug"}, {}, debug_logged, True, False),
    "api_port": Row({"api_port": 9102}, {}, bridge_binding, (9102, "127.0.0.1"), (9002, "127.0.0.1")),
    "bridge_addr": Row({"bridge_addr": "::1"}, {}, bridge_binding, (9002, "::1"), (9002, "127.0.0.1")),
    "tcp_port": Row(
        {"tcp_port": 7100}, {"tcp_port": 7100}, tcp_port_use, ([7100, 7101], [7101, 7100]), ([7000, 7001], [7001, 7000])
    ),
    "router_addr": Row(
        {}, {"router_addr": "http://127.0.0.2"}, service_urls,
        ["http://127.0.0.2:9003/route", "http://127.0.0.1:9004/"],
        ["http://127.0.0.1:9003/route", "http://127.0.0.1:9004/"],
    ),
    "router_port": Row(
        {}, {"router_port": 9103}, service_urls,
        ["http://127.0.0.1:9103/route", "http://127.0.0.1:9004/"],
        ["http://127.0.0.1:9003/route", "http://127.0.0.1:9004/"],
    ),
    "a2a_addr": Row(
        {}, {"a2a_addr": "http://127.0.0.3"}, service_urls,
        ["http://127.0.0.1:9003/route", "http://127.0.0.3:9004/"],
        ["http://127.0.0.1:9003/route", "http://127.0.0.1:9004/"],
    ),
    "a2a_port": Row(
        {}, {"a2a_port": 9104}, service_urls,
        ["http://127.0.0.1:9003/route", "http://127.0.0.1:9104/"],
        ["http://127.0.0.1:9003/route", "http://127.0.0.1:9004/"],
    ),
    # The sender's limit: refused at A before dialling.
    "max_message_size": Row(
        {"max_message_size": 10}, {}, send_size_status(11),
        (413, b"Message too large: 11 bytes (max_message_size is 10)\n"), (200, b""),
    ),
    "max_concurrent_conns": Row({}, {"max_concurrent_conns": 1}, second_connection_refused(False), True, False),
    "max_conns_per_peer": Row({}, {"max_conns_per_peer": 1}, second_connection_refused(True), True, False),
    "conn_read_timeout_secs": Row(
        {}, {"conn_read_timeout_secs": 2}, closed_after(encode_message(b"x" * 10)[:8], 3), True, False
    ),
    "conn_idle_timeout_secs": Row(
        {}, {"conn_idle_timeout_secs": 2}, closed_after(encode_message(b"x"), 3), True, False
    ),
    "peer_max_backoff_secs": Row({"peer_max_backoff_secs": 3}, {}, redial_waits_within_3s, True, False),
    "connect_timeout_secs": Row({"connect_timeout_secs": 2}, {}, overlay_connect_failed_after(3), True, False),
    "tcp_rcv_budget_bytes": Row({"tcp_rcv_budget_bytes": 1_000_000}, {}, rcv_budget_limit, 1_000_000, 8 << 20),
    "send_idle_close_secs": Row({"send_idle_close_secs": 1}, {}, pooled_after(2), False, True),
    "send_timeout_secs": Row({"send_timeout_secs": 2}, {}, full_receiver_send_status_after(3), 503, None),
    "request_timeout_secs": Row({"request_timeout_secs": 2}, {}, slow_router_answered_by(3), True, False),
    "stream_timeout_secs": Row({}, {"stream_timeout_secs": 2}, slow_router_answered_by(3), True, False),
    "recv_queue_max_messages": Row({}, {"recv_queue_max_messages": 1}, queue_admits, 1, 3),
    "recv_queue_max_bytes": Row({}, {"recv_queue_max_bytes": 10}, queue_admits, 1, 3),
    "recv_wait_max_secs": Row({}, {"recv_wait_max_secs": 2}, long_poll_answered_after(3), 204, None),
    "mcp_session_ttl_secs": Row({"mcp_session_ttl_secs": 5}, {}, session_after(6), 404, 200),
    "max_handshakes_per_source": Row({"max_handshakes_per_source": 3}, {}, links_admitted, 3, 8),
    "max_inbound_per_source": Row({"max_inbound_per_source": 2}, {}, links_admitted, 2, 8),
    "max_inbound_per_key": Row({"max_inbound_per_key": 1}, {}, links_up_with_one_key, 1, 3),
    "link_write_buffer_bytes": Row({"link_write_buffer_bytes": 15_000}, {}, traffic_dropped_while_blocked, 4, 0),
    "link_write_budget_bytes": Row(
        {"link_write_budget_bytes": 45_000}, {}, traffic_dropped_on_two_blocked_links, 2, 0
    ),
    "max_inbound_links": Row({"max_inbound_links": 2}, {}, inbound_links_up, 2, 5),
    "bridge_header_timeout_secs": Row(
        {"bridge_header_timeout_secs": 2}, {}, bridge_closed_after(b"GET /recv HTTP/1.1\r\n", 3), True, False
    ),
    "bridge_body_timeout_secs": Row(
        {"bridge_body_timeout_secs": 2}, {},
        bridge_closed_after(b"POST /send HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n", 3), True, False,
    ),  # fmt: skip
    "bridge_max_connections": Row(
        {"bridge_max_connections": 2}, {},
        bridge_third_refused(b"POST /send HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n"), True, False,
    ),  # fmt: skip
    "bridge_max_requests": Row(
        {"bridge_max_requests": 2}, {}, bridge_third_refused(b"GET /recv?wait=30 HTTP/1.1\r\nHost: a\r\n\r\n"),
        True, False,
    ),  # fmt: skip
    "bridge_max_background": Row({"bridge_max_background": 1}, {}, notifications_accepted, [202, 503, 503], [202] * 3),
    "bridge_max_inflight_bytes": Row({"bridge_max_inflight_bytes": 150_000}, {}, second_bulk_send_status, 503, None),
    "mcp_allowed_peers": Row(
        {}, {"mcp_allowed_peers": [OTHER]}, mcp_error, {"code": -32603, "message": "mcp: peer not allowed"}, None
    ),
    "a2a_allowed_peers": Row(
        {}, {"a2a_allowed_peers": [OTHER]}, a2a_answer,
        (502, {"code": -32603, "message": "a2a: peer not allowed"}), (200, None),
    ),
    # Forwards: each starts a listener of its own on the node.
    "socks": Row({"socks": "127.0.0.1:1080"}, {}, node_bindings, ([1080, 9002], [], [7000, 7001], []), BARE),
    "local_tcp": Row(
        {"local_tcp": [f"2222:{OTHER}.pk.ygg:22"]}, {}, node_bindings, ([2222, 9002], [], [7000, 7001], []), BARE
    ),
    "remote_tcp": Row(
        {"remote_tcp": ["80:127.0.0.1:8000"]}, {}, node_bindings, ([9002], [], [80, 7000, 7001], []), BARE
    ),
    "local_udp": Row(
        {"local_udp": [f"5353:{OTHER}.pk.ygg:53"]}, {}, node_bindings, ([9002], [5353], [7000, 7001], []), BARE
    ),
    "remote_udp": Row({"remote_udp": ["53:127.0.0.1:53"]}, {}, node_bindings, ([9002], [], [7000, 7001], [53]), BARE),
}

#: The receiver's C{max_message_size} (besides the sender's row above).
RECEIVER_LIMIT = Row({}, {"max_message_size": 10}, send_size_status(11), (413, OVERSIZE_TEXT), (200, b""))


def node_key(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """
    Whether a node built from the config alone (no identity given) has key A; a C{PrivateKeyPath}
    of C{"<pem>"} is a PEM file of A's key written for the occasion.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if a.get("PrivateKeyPath") == "<pem>":
            path = os.path.join(tmp, "key.pem")
            with open(path, "wb") as f:
                f.write(pem_of_seed(A_ID.seed))
            os.chmod(path, 0o600)
            a = {**a, "PrivateKeyPath": path}
        return make_node_service(config_from_dict(a), MemoryReactorClock()).node.public_key == A_ID.public_key


def dialled_hosts(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, int]]:
    """The peers a started whole node dials."""
    reactor = MemoryReactorClock()
    service = make_node_service(config_from_dict(a), reactor, identity=A_ID)
    service.startService()
    try:
        reactor.advance(0)
        return [(host, port) for host, port, *_ in reactor.tcpClients]
    finally:
        service.stopService()


def node_info_name(a: dict[str, Any], b: dict[str, Any]) -> object:
    """The C{name} in a whole node's answer to a remote getNodeInfo."""
    proto = make_node_service(config_from_dict(a), MemoryReactorClock(), identity=A_ID).node.overlay.proto
    replies: list[bytes] = []
    proto._reply = lambda dest, message: replies.append(message)  # type: ignore[method-assign]
    proto.received(C_KEY, bytes([NODEINFO_REQUEST]))
    [reply] = replies
    return json.loads(reply[1:]).get("name")


#: Yggdrasil's keys (capitalised). C{AllowedPublicKeys}' behaviour is in
#: L{tests.test_link_peers} (the manager refuses other inbound keys) with its wiring
#: (C{ServiceWiringTests}); the keys axl ignores only warn (L{tests.test_config}).
YGG_ROWS: dict[str, Row] = {
    "PrivateKey": Row({"PrivateKey": (A_ID.seed + A_ID.public_key).hex()}, {}, node_key, True, False),
    "PrivateKeyPath": Row({"PrivateKeyPath": "<pem>"}, {}, node_key, True, False),
    "Peers": Row({"Peers": ["tcp://127.0.0.1:9"]}, {}, dialled_hosts, [("127.0.0.1", 9)], []),
    "Listen": Row({"Listen": ["tcp://127.0.0.1:9555"]}, {}, node_bindings, ([9002, 9555], [], [7000, 7001], []), BARE),
    "AdminListen": Row(
        {"AdminListen": "tcp://127.0.0.1:9556"}, {}, node_bindings, ([9002, 9556], [], [7000, 7001], []), BARE
    ),
    "NodeInfo": Row({"NodeInfo": {"name": "n1"}}, {}, node_info_name, "n1", None),
}


class CoverageTests(SynchronousTestCase):
    def test_every_node_key_has_a_row(self) -> None:
        """Each key of NODE_KEYS has a behaviour row here, and no row names a key that does not exist."""
        self.assertEqual(sorted(ROWS), sorted(k.name for k in NODE_KEYS))


class KeyBehaviourTests(SynchronousTestCase):
    """One test per key (generated from L{ROWS})."""

    def check(self, row: Row) -> None:
        self.assertEqual(row.observe({}, {}), row.default, "with the default value")
        self.assertEqual(row.observe(row.a, row.b), row.changed, "with the non-default value")
        self.assertNotEqual(row.changed, row.default)

    def test_receiver_max_message_size(self) -> None:
        """The receiver's max_message_size refuses a larger message, and the sender's /send is 413."""
        self.check(RECEIVER_LIMIT)


def _make(name: str, row: Row) -> Callable[[KeyBehaviourTests], None]:
    def test(self: KeyBehaviourTests) -> None:
        self.check(row)

    test.__doc__ = f"{name}: a non-default value changes the behaviour ({row.observe.__doc__ or ''})".strip()
    return test


for _name, _row in [*ROWS.items(), *YGG_ROWS.items()]:
    setattr(KeyBehaviourTests, f"test_{_name}", _make(_name, _row))
