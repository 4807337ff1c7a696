# -*- test-case-name: tests.test_tcp_overlay -*-
"""
Overlay TCP on the real session and IPv6 layers (axl.ipv6.testing's in-memory mesh, with
encryption): endpoints, a relay in the path, HTTP, and the service that stops the stack.
"""

from __future__ import annotations

import os

from twisted.internet.endpoints import connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from axl.crypto.keys import Identity
from axl.ipv6.testing import FakeNetwork, Stack
from axl.overlay_address import OverlayAddress
from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint
from axl.tcp.service import TCPService
from axl.tcp.stack import TCPStack


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Collector(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.reason = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        self.reason = reason


class Mesh:
    """Nodes of the in-memory mesh, each with a TCP stack; L{run} drives network and clock."""

    def __init__(self, n: int = 2) -> None:
        self.clock = Clock()
        self.clock.advance(1.7e9)
        self.net = FakeNetwork()
        self.nodes = [Stack(self.net, Identity.generate(), self.clock) for _ in range(n)]
        self.tcp = [TCPStack(s.ipv6, s.public_key, self.clock) for s in self.nodes]

    def run(self, done, max_time: float = 60.0) -> bool:
        end = self.clock.seconds() + max_time
        while not done():
            if self.net.flush(1_000_000):
                continue
            calls = self.clock.getDelayedCalls()
            if not calls or self.clock.seconds() > end:
                return done()
            step = min(c.getTime() for c in calls) - self.clock.seconds()
            self.clock.advance(max(step, 0))
        return True

    def wait(self, d, max_time: float = 60.0) -> None:
        box: list[object] = []
        d.addBoth(lambda r: box.append(r) or r)
        self.run(lambda: bool(box), max_time)


class OverlayTCPTests(SynchronousTestCase):
    """TCP over sessions + IPv6."""

    def test_echo_through_relay(self) -> None:
        """
        An echo over overlay TCP between two nodes whose packets pass a relay node arrives
        intact (1 MiB), with the peer's full key in getPeer.
        """
        m = Mesh(3)
        a, relay, b = m.nodes
        m.net.relays[(a.public_key, b.public_key)] = [relay.public_key]
        m.net.relays[(b.public_key, a.public_key)] = [relay.public_key]
        self.successResultOf(OverlayServerEndpoint(m.tcp[2], 7).listen(Factory.forProtocol(Echo)))
        proto = Collector()
        d = connectProtocol(OverlayClientEndpoint(m.tcp[0], b.public_key, 7), proto)
        m.wait(d)
        self.successResultOf(d)
        self.assertEqual(proto.transport.getPeer(), OverlayAddress(b.public_key, 7))
        blob = os.urandom(1 << 20)
        proto.transport.write(blob)
        m.run(lambda: len(proto.data) == len(blob))
        self.assertEqual(bytes(proto.data), blob)
        self.assertIn((relay.public_key, b.public_key), m.net.hops)

    def test_http_through_relay(self) -> None:
        """A twisted.web server on overlay port 80 answers an Agent request through a relay."""
        m = Mesh(3)
        a, relay, b = m.nodes
        m.net.relays[(a.public_key, b.public_key)] = [relay.public_key]
        root = Resource()

        class Hello(Resource):
            isLeaf = True

            def render_GET(self, request):
                return b"hello " + request.getClientAddress().public_key.hex().encode()

        root.putChild(b"", Hello())
        self.successResultOf(OverlayServerEndpoint(m.tcp[2], 80).listen(Site(root, reactor=m.clock)))

        class Endpoints:
            def endpointForURI(self, uri):
                return OverlayClientEndpoint(m.tcp[0], bytes.fromhex(uri.host.decode()), uri.port)

        agent = Agent.usingEndpointFactory(m.clock, Endpoints())
        d = agent.request(b"GET", b"http://" + b.public_key.hex().encode() + b"/")
        m.wait(d)
        response = self.successResultOf(d)
        body = readBody(response)
        m.wait(body)
        self.assertEqual(self.successResultOf(body), b"hello " + a.public_key.hex().encode())

    def test_packet_too_big_from_the_ipv6_layer(self) -> None:
        """
        An ICMPv6 Packet Too Big (MTU 1280) that arrives through the IPv6 layer about one of
        our segments shrinks that connection's segments to 1280 - 60 - 12 bytes (RFC 8201).
        """
        from axl.ipv6.icmpv6 import packet_too_big

        m = Mesh(2)
        sent: list[bytes] = []
        original_send = m.nodes[0].ipv6.send_ipv6

        def spy(packet: bytes) -> None:
            sent.append(packet)
            original_send(packet)

        m.nodes[0].ipv6.send_ipv6 = spy  # type: ignore[method-assign]  # bound per connection
        self.successResultOf(OverlayServerEndpoint(m.tcp[1], 7).listen(Factory.forProtocol(Echo)))
        proto = Collector()
        d = connectProtocol(OverlayClientEndpoint(m.tcp[0], m.nodes[1].public_key, 7), proto)
        m.wait(d)
        conn = m.tcp[0].connections[0]
        self.assertEqual(conn.smss, 65475 - 12)
        ptb = packet_too_big(sent[-1], 1280)
        m.nodes[0].ipv6.packet_received(m.nodes[1].public_key, ptb)
        self.assertEqual(conn.smss, 1280 - 60 - 12)
        proto.transport.write(bytes(100_000))
        m.run(lambda: len(proto.data) == 100_000)
        self.assertEqual(len(proto.data), 100_000)

    def test_service_stop_closes_connections(self) -> None:
        """Stopping the TCP service closes open connections and leaves no TCP timers."""
        m = Mesh(2)
        service = TCPService(m.tcp[0], grace=1.0)
        service.startService()
        self.successResultOf(OverlayServerEndpoint(m.tcp[1], 7).listen(Factory.forProtocol(Echo)))
        proto = Collector()
        d = connectProtocol(OverlayClientEndpoint(m.tcp[0], m.nodes[1].public_key, 7), proto)
        m.wait(d)
        stopped = service.stopService()
        m.wait(stopped)
        self.successResultOf(stopped)
        self.assertIsNotNone(proto.reason)
        self.assertEqual(m.tcp[0].connections, [])
        m.run(lambda: not m.tcp[1].connections)
        leftovers = [c for c in m.clock.getDelayedCalls() if "Connection" in repr(c.func)]
        self.assertEqual(leftovers, [])


class NodeWiringTests(SynchronousTestCase):
    """axl.service gives every node a TCP stack."""

    def test_node_has_tcp_with_configured_timeout(self) -> None:
        """
        make_node_service sets node.tcp on the node's IPv6 layer, with connect_timeout_secs, and
        declares that overlay transports report acknowledgements to the streams.
        """
        from twisted.internet.testing import MemoryReactorClock

        from axl.config import config_from_dict
        from axl.service import make_node_service

        top = make_node_service(config_from_dict({"connect_timeout_secs": 3}), MemoryReactorClock(),
                                identity=Identity.generate())
        node = top.node
        self.assertIsInstance(node.tcp, TCPStack)
        self.assertIs(node.tcp.ipv6, node.ipv6)
        self.assertEqual(node.tcp.connect_timeout, 3.0)
        self.assertEqual(node.tcp.public_key, node.identity.public_key)
        from axl.interfaces import IAcknowledgingTransport
        from axl.tcp.transport import OverlayTransport

        self.assertTrue(IAcknowledgingTransport.implementedBy(OverlayTransport))
