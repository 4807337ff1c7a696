# -*- test-case-name: tests.test_tcp_endpoints -*-
"""
Tests for L{axl.tcp.endpoints}: overlay endpoints behave like Twisted's TCP endpoints, so
ordinary protocols, C{connectProtocol}, C{StreamServerEndpointService} and twisted.web/Agent run
over the overlay unchanged.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import (
    ConnectError,
    ConnectionDone,
    ConnectionRefusedError,
    TCPTimedOutError,
)
from twisted.internet.interfaces import (
    IListeningPort,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface.verify import verifyObject

from axl.overlay_address import OverlayAddress
from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint
from axl.tcp.stack import TCPStack
from axl.tcp.testing import FakeIPv6Layer, LossyNetwork, run_until

KEY_A, KEY_B, KEY_NOWHERE = bytes([1]) * 32, bytes([2]) * 32, bytes([9]) * 32


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Collector(Protocol):
    """Keeps what it receives and how the connection ended."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.reason = None
        self.made = False

    def connectionMade(self) -> None:
        self.made = True

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        self.reason = reason


def make_pair(**kw: float):
    clock = Clock()
    net = LossyNetwork(clock, **kw)
    a = TCPStack(FakeIPv6Layer(KEY_A, net), KEY_A, clock)
    b = TCPStack(FakeIPv6Layer(KEY_B, net), KEY_B, clock)
    return clock, net, a, b


def wait(clock: Clock, d, max_time: float = 30.0) -> None:
    """Run the clock until C{d} has a result (not merely a pending inner Deferred)."""
    box: list[object] = []

    def got(result):
        box.append(result)
        return result

    d.addBoth(got)
    run_until(clock, lambda: bool(box), max_time)


class EndpointTests(SynchronousTestCase):
    """Client and server endpoints."""

    def test_interfaces(self) -> None:
        """The endpoints and the listening port provide Twisted's interfaces."""
        _clock, _net, a, b = make_pair()
        server = OverlayServerEndpoint(b, 80)
        self.assertTrue(verifyObject(IStreamServerEndpoint, server))
        self.assertTrue(verifyObject(IStreamClientEndpoint, OverlayClientEndpoint(a, KEY_B, 80)))
        port = self.successResultOf(server.listen(Factory.forProtocol(Echo)))
        self.assertTrue(verifyObject(IListeningPort, port))
        self.assertEqual(port.getHost(), OverlayAddress(KEY_B, 80))
        self.assertRaises(ValueError, OverlayClientEndpoint, a, b"short", 80)

    def test_echo_and_addresses(self) -> None:
        """connectProtocol over the overlay reaches an Echo server; addresses are OverlayAddress."""
        clock, _net, a, b = make_pair()
        port = self.successResultOf(OverlayServerEndpoint(b, 7).listen(Factory.forProtocol(Echo)))
        proto = Collector()
        d = connectProtocol(OverlayClientEndpoint(a, KEY_B, 7), proto)
        run_until(clock, lambda: d.called)
        self.assertIs(self.successResultOf(d), proto)
        self.assertTrue(proto.made)
        peer, host = proto.transport.getPeer(), proto.transport.getHost()
        self.assertEqual(peer, OverlayAddress(KEY_B, 7))
        self.assertEqual(host.public_key, KEY_A)
        self.assertGreaterEqual(host.port, 49152)
        proto.transport.write(b"hello ")
        proto.transport.writeSequence([b"over", b"lay"])
        run_until(clock, lambda: len(proto.data) == 13)
        self.assertEqual(bytes(proto.data), b"hello overlay")
        proto.transport.loseConnection()
        run_until(clock, lambda: proto.reason is not None)
        proto.reason.trap(ConnectionDone)
        self.successResultOf(port.stopListening())

    def test_unreachable_times_out(self) -> None:
        """Connecting to a key nobody answers for fails with TCPTimedOutError after 10 s."""
        clock, _net, a, _b = make_pair()
        d = OverlayClientEndpoint(a, KEY_NOWHERE, 80).connect(Factory.forProtocol(Collector))
        for _ in range(99):
            clock.advance(0.1)
        self.assertNoResult(d)
        clock.advance(0.2)
        f = self.failureResultOf(d, TCPTimedOutError)
        self.assertIn("10 s", str(f.value))
        self.assertEqual(a.connections, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timeout_configurable(self) -> None:
        """The stack's connect_timeout, or the endpoint's timeout, sets how long we wait."""
        clock, _net, a, _b = make_pair()
        a.connect_timeout = 3.0
        d = OverlayClientEndpoint(a, KEY_NOWHERE, 80).connect(Factory.forProtocol(Collector))
        d2 = OverlayClientEndpoint(a, KEY_NOWHERE, 80, timeout=1.0).connect(
            Factory.forProtocol(Collector))
        clock.advance(1.01)
        self.failureResultOf(d2, TCPTimedOutError)
        self.assertNoResult(d)
        for _ in range(21):
            clock.advance(0.1)
        self.failureResultOf(d, TCPTimedOutError)

    def test_refused(self) -> None:
        """A closed port refuses: ConnectionRefusedError, promptly."""
        clock, _net, a, _b = make_pair()
        d = OverlayClientEndpoint(a, KEY_B, 81).connect(Factory.forProtocol(Collector))
        clock.advance(0)
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """Cancelling a pending connect fails it with CancelledError and leaves no timers."""
        clock, _net, a, _b = make_pair()
        d = OverlayClientEndpoint(a, KEY_NOWHERE, 80).connect(Factory.forProtocol(Collector))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(a.connections, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_factory_returning_none(self) -> None:
        """A client factory that builds no protocol fails the connect with ConnectError."""
        clock, _net, a, b = make_pair()
        self.successResultOf(OverlayServerEndpoint(b, 7).listen(Factory.forProtocol(Echo)))

        class NoneFactory(Factory):
            def buildProtocol(self, addr):
                return None

        d = OverlayClientEndpoint(a, KEY_B, 7).connect(NoneFactory())
        run_until(clock, lambda: d.called)
        self.failureResultOf(d, ConnectError)

    def test_connect_to_own_key(self) -> None:
        """A node can connect to its own key (delivered locally)."""
        clock, _net, a, _b = make_pair()
        self.successResultOf(OverlayServerEndpoint(a, 7).listen(Factory.forProtocol(Echo)))
        proto = Collector()
        d = connectProtocol(OverlayClientEndpoint(a, KEY_A, 7), proto)
        run_until(clock, lambda: d.called)
        self.successResultOf(d)
        proto.transport.write(b"me")
        run_until(clock, lambda: proto.data == b"me")
        self.assertEqual(proto.transport.getPeer(), OverlayAddress(KEY_A, 7))

    def test_listen_on_taken_port_fails(self) -> None:
        """Listening twice on one port fails the second listen() Deferred."""
        from twisted.internet.error import CannotListenError
        _clock, _net, a, _b = make_pair()
        self.successResultOf(OverlayServerEndpoint(a, 7).listen(Factory.forProtocol(Echo)))
        self.failureResultOf(OverlayServerEndpoint(a, 7).listen(Factory.forProtocol(Echo)),
                             CannotListenError)

    def test_factory_started_and_stopped(self) -> None:
        """listen() starts the factory; stopListening() closes the port and stops it, once."""
        clock, _net, a, b = make_pair()
        factory = Factory.forProtocol(Echo)
        port = self.successResultOf(OverlayServerEndpoint(b, 7).listen(factory))
        self.assertEqual(factory.numPorts, 1)
        self.successResultOf(port.stopListening())
        self.assertEqual(factory.numPorts, 0)
        self.successResultOf(port.stopListening())
        self.assertEqual(factory.numPorts, 0)
        d = OverlayClientEndpoint(a, KEY_B, 7).connect(Factory.forProtocol(Collector))
        run_until(clock, lambda: d.called)
        self.failureResultOf(d, ConnectionRefusedError)

    def test_cancel_after_timeout_set_keeps_cancelled_error(self) -> None:
        """A caller's cancel() before the timeout gives CancelledError, not a timeout error."""
        clock, _net, a, _b = make_pair()
        d = OverlayClientEndpoint(a, KEY_NOWHERE, 80, timeout=5).connect(
            Factory.forProtocol(Collector))
        clock.advance(4)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        clock.advance(10)
        self.assertEqual(a.connections, [])

    def test_stream_server_endpoint_service(self) -> None:
        """StreamServerEndpointService runs a factory on an overlay port and stops it."""
        clock, _net, a, b = make_pair()
        service = StreamServerEndpointService(OverlayServerEndpoint(b, 9), Factory.forProtocol(Echo))
        service.startService()
        proto = Collector()
        d = connectProtocol(OverlayClientEndpoint(a, KEY_B, 9), proto)
        run_until(clock, lambda: d.called)
        proto.transport.write(b"svc")
        run_until(clock, lambda: proto.data == b"svc")
        self.successResultOf(service.stopService())
        d2 = OverlayClientEndpoint(a, KEY_B, 9).connect(Factory.forProtocol(Collector))
        run_until(clock, lambda: d2.called)
        self.failureResultOf(d2, ConnectionRefusedError)

    def test_http_over_overlay(self) -> None:
        """A twisted.web Site on overlay port 80 answers an Agent request made over the overlay."""
        clock, _net, a, b = make_pair(delay=0.001)
        root = Resource()

        class Hello(Resource):
            isLeaf = True

            def render_GET(self, request):
                return b"hello from " + request.getHost().public_key[:1].hex().encode()

        root.putChild(b"", Hello())
        self.successResultOf(OverlayServerEndpoint(b, 80).listen(Site(root, reactor=clock)))

        class EndpointFactory:
            def endpointForURI(self, uri):
                return OverlayClientEndpoint(a, bytes.fromhex(uri.host.decode()[:64]), uri.port)

        agent = Agent.usingEndpointFactory(clock, EndpointFactory())
        d = agent.request(b"GET", b"http://" + KEY_B.hex().encode() + b":80/")
        wait(clock, d)
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        body = readBody(response)
        wait(clock, body)
        self.assertEqual(self.successResultOf(body), b"hello from 02")
