# -*- test-case-name: tests.test_service -*-
"""
Tests for L{axl.service} (wiring a node) and L{axl.node.Node}.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from axl.config import config_from_dict, default_config
from axl.crypto import Identity
from axl.errors import ConfigError, StartupError
from axl.service import (
    BridgeService,
    BridgeSite,
    NodeService,
    NodeStartupService,
    OverlayDelivery,
    bridge_endpoint,
    make_node_service,
)

KEY_A = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
ADDR_A = "202:24ae:c219:8a4a:de94:eae2:b97e:ac87"
KEY_B = "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
PRIV_B = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" + KEY_B


def messages(events: list[dict[str, Any]]) -> list[str]:
    from twisted.logger import formatEvent

    return [formatEvent(e) for e in events]


class NodeTests(SynchronousTestCase):
    """The Node record that make_node_service makes last."""

    def setUp(self) -> None:
        self.config, self.ident, self.clock = default_config(), Identity(bytes(32)), MemoryReactorClock()
        self.node = make_node_service(self.config, self.clock, self.ident).node
        assert self.node is not None

    def test_attributes(self) -> None:
        """The node holds config, identity and clock, and every layer, each built on the one below."""
        node = self.node
        self.assertIs(node.config, self.config)
        self.assertIs(node.identity, self.ident)
        self.assertIs(node.clock, self.clock)
        self.assertEqual(node.public_key.hex(), KEY_A)
        self.assertIs(node.links.handler, node.router)
        self.assertIs(node.sessions, node.overlay.sessions)
        self.assertIs(node.ipv6, node.overlay.ipv6)
        self.assertIs(node.tcp.ipv6, node.ipv6)
        self.assertIs(node.sender, node.streams.sender)
        self.assertIs(node.recv_queue, node.streams.queue)
        self.assertIs(node.bridge.sender, node.sender)
        self.assertIs(node.bridge.queue, node.recv_queue)

    def test_immutable(self) -> None:
        """The record cannot be changed after it is made."""
        from dataclasses import FrozenInstanceError

        with self.assertRaises(FrozenInstanceError):
            self.node.tcp = None  # type: ignore[misc]

    def test_provides_inode(self) -> None:
        """Node provides INode."""
        from zope.interface.verify import verifyObject

        from axl.interfaces import INode

        self.assertTrue(verifyObject(INode, self.node))

    def test_topology(self) -> None:
        """topology() gives our address and key, no peers, and ourselves as the tree's only entry."""
        doc = self.node.topology()
        self.assertEqual(
            (doc["our_ipv6"], doc["our_public_key"], doc["peers"]), (ADDR_A, KEY_A, [])
        )
        self.assertEqual([e["public_key"] for e in doc["tree"]], [KEY_A])  # type: ignore[attr-defined]

    def test_bridge_address_reaches_the_api(self) -> None:
        """The bridge knows its configured address (for absolute card URLs)."""
        config = replace(default_config(), bridge_addr="::1", api_port=9102)
        node = make_node_service(config, self.clock, self.ident).node
        assert node is not None
        self.assertEqual((node.bridge.bridge_addr, node.bridge.api_port), ("::1", 9102))


class OverlayDeliveryTests(SynchronousTestCase):
    """The router's one upward link."""

    def test_delivers_once_registered(self) -> None:
        """Traffic and path notifies go to the registered overlay."""
        calls: list[tuple[str, bytes]] = []

        class Overlay:
            def traffic_received(self, source: bytes, data: bytes) -> None:
                calls.append(("traffic", source + data))

            def path_notify(self, key: bytes) -> None:
                calls.append(("notify", key))

        delivery = OverlayDelivery()
        delivery.register(Overlay())  # type: ignore[arg-type]
        delivery.traffic_received(b"k", b"d")
        delivery.path_notify(b"k")
        self.assertEqual(calls, [("traffic", b"kd"), ("notify", b"k")])

    def test_registered_once(self) -> None:
        """A second registration, or a delivery before the first, is a programming error."""
        delivery = OverlayDelivery()
        self.assertRaises(RuntimeError, delivery.traffic_received, b"k", b"d")
        delivery.register(object())  # type: ignore[arg-type]
        self.assertRaises(RuntimeError, delivery.register, object())


class MakeNodeServiceTests(SynchronousTestCase):
    """make_node_service wires a node on a memory reactor."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def test_identity_from_config(self) -> None:
        """Without an explicit identity the config's key is loaded."""
        top = make_node_service(config_from_dict({"PrivateKey": PRIV_B}), self.reactor)
        self.assertEqual(top.node.public_key.hex(), KEY_B)  # type: ignore[union-attr]
        self.assertIs(top.node.clock, self.reactor)  # type: ignore[union-attr]

    def test_identity_error(self) -> None:
        """A missing key file stops the build with the ConfigError."""
        config = config_from_dict({"PrivateKeyPath": self.mktemp()}, "c.json")
        self.assertRaises(ConfigError, make_node_service, config, self.reactor)

    def test_order(self) -> None:
        """The startup reporter comes first and the bridge last."""
        top = make_node_service(default_config(), self.reactor, Identity(bytes(32)))
        children = list(top)
        self.assertIsInstance(children[0], NodeStartupService)
        self.assertIsInstance(children[-1], BridgeService)

    def test_nothing_before_start(self) -> None:
        """Building the service binds nothing; starting it binds the bridge on the config's address."""
        config = replace(default_config(), api_port=9102)
        top = make_node_service(config, self.reactor, Identity(bytes(32)))
        self.assertEqual(self.reactor.tcpServers, [])
        top.privilegedStartService()
        top.startService()
        self.assertEqual(len(self.reactor.tcpServers), 1)
        port, factory, _backlog, interface = self.reactor.tcpServers[0]
        self.assertEqual((port, interface), (9102, "127.0.0.1"))
        self.assertIsInstance(factory, Site)

    def test_start_logs(self) -> None:
        """Starting logs the config source and, after binding, the key, the address and the bridge address."""
        config = replace(default_config(), warnings=("x.json: unknown key 'q' ignored",))
        top = make_node_service(config, self.reactor, Identity(bytes(32)))
        with capturedLogs() as events:
            top.startService()
        text = messages(events)
        self.assertIn("Loaded node config from <default>", text)
        self.assertIn("Config: x.json: unknown key 'q' ignored", text)
        tail = text[-3:]
        self.assertEqual(
            tail, [f"Our Public Key: {KEY_A}", f"Our IPv6: {ADDR_A}", "Listening on 127.0.0.1:9002"]
        )

    def test_peers_and_listeners_logged(self) -> None:
        """Configured peers and listeners are logged at start."""
        config = replace(default_config(), peers=("tls://h:1",), listen=("tls://0.0.0.0:2",))
        top = make_node_service(config, self.reactor, Identity(bytes(32)))
        with capturedLogs() as events:
            top.startService()
        text = messages(events)
        self.assertIn("Configured peer: tls://h:1", text)
        self.assertIn("Configured listener: tls://0.0.0.0:2", text)

    def test_stop_closes_bridge(self) -> None:
        """Stopping the node stops listening on the bridge port."""
        top = make_node_service(default_config(), self.reactor, Identity(bytes(32)))
        top.startService()
        bridge = list(top)[-1]
        port = _Port()
        bridge.port = port
        self.successResultOf(top.stopService())
        self.assertEqual(port.stopped, 1)
        self.assertIsNone(bridge.port)


class BridgeEndpointTests(SynchronousTestCase):
    """bridge_endpoint picks the endpoint for the host's kind."""

    def test_kinds(self) -> None:
        """IPv4 literals and names get TCP4 endpoints, IPv6 literals TCP6 endpoints."""
        reactor = MemoryReactorClock()
        self.assertIsInstance(bridge_endpoint(reactor, "127.0.0.1", 1), TCP4ServerEndpoint)
        self.assertIsInstance(bridge_endpoint(reactor, "localhost", 1), TCP4ServerEndpoint)
        self.assertIsInstance(bridge_endpoint(reactor, "::1", 1), TCP6ServerEndpoint)

    def test_ipv6_bridge(self) -> None:
        """An IPv6 bridge_addr binds on it and is logged in brackets."""
        reactor = MemoryReactorClock()
        config = replace(default_config(), bridge_addr="::1")
        top = make_node_service(config, reactor, Identity(bytes(32)))
        with capturedLogs() as events:
            top.startService()
        self.assertEqual(reactor.tcpServers[0][3], "::1")
        self.assertEqual(messages(events)[-1], "Listening on [::1]:9002")


class _Port:
    stopped = 0

    def stopListening(self) -> Any:
        self.stopped += 1
        return succeed(None)


class _Endpoint:
    def __init__(self, result: Any) -> None:
        self.result = result

    def listen(self, factory: Any) -> Any:
        return self.result


class BridgeServiceTests(SynchronousTestCase):
    """What happens when the bridge cannot bind."""

    def service(self, endpoint: Any) -> BridgeService:
        return BridgeService(replace(default_config(), source="c.json"), Identity(bytes(32)), endpoint, Site(None))

    def test_port_taken(self) -> None:
        """A taken port is a StartupError naming the address, the reason and the config keys."""
        err = CannotListenError("127.0.0.1", 9002, OSError(98, "Address already in use"))
        service = self.service(_Endpoint(fail(err)))
        with capturedLogs() as events:
            with self.assertRaises(StartupError) as cm:
                service.startService()
        self.assertEqual(
            str(cm.exception),
            "cannot listen on 127.0.0.1:9002 for the HTTP bridge (address already in use); "
            "set another api_port or bridge_addr in c.json",
        )
        self.assertNotIn("Listening on", " ".join(messages(events)))

    def test_other_failure(self) -> None:
        """Any other listen failure is a StartupError too."""
        service = self.service(_Endpoint(fail(RuntimeError("boom"))))
        with self.assertRaises(StartupError) as cm:
            service.startService()
        self.assertEqual(
            str(cm.exception),
            "cannot listen on 127.0.0.1:9002 for the HTTP bridge (boom); set another api_port or bridge_addr in c.json",
        )

    def test_stop_without_port(self) -> None:
        """Stopping a bridge that never bound does nothing."""
        service = self.service(_Endpoint(succeed(None)))
        self.assertIsNone(service.stopService())


class BridgeSiteTests(SynchronousTestCase):
    def test_no_access_log(self) -> None:
        """
        The bridge site writes no access-log line per request, where a plain Site does (apps
        poll /recv many times a second).
        """
        import io

        from twisted.web.resource import Resource
        from twisted.web.test.requesthelper import DummyRequest

        for site_class, expect_line in ((Site, True), (BridgeSite, False)):
            site = site_class(Resource())
            site.logFile = io.StringIO()
            request = DummyRequest([b"recv"])
            request.client = None
            request.code = 200
            request.sentLength = 0
            site.log(request)
            self.assertEqual(bool(site.logFile.getvalue()), expect_line, site_class)


class _Layer(Service):
    """A child service that records its stop and finishes stopping when told to."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self._log = log
        self.stopping: Deferred[None] | None = None

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._log.append(self.name)
        self.stopping = Deferred()
        return self.stopping


class NodeServiceTests(SynchronousTestCase):
    def test_stops_top_down_one_at_a_time(self) -> None:
        """
        Layers stop in reverse order, each only after the one above it finished stopping; the
        node's stop fires when the lowest layer is done.
        """
        stopped: list[str] = []
        top = NodeService()
        layers = [_Layer(name, stopped) for name in ("links", "ipv6", "tcp")]
        for layer in layers:
            layer.setServiceParent(top)
        top.startService()
        done = top.stopService()
        self.assertEqual(stopped, ["tcp"])
        layers[2].stopping.callback(None)
        self.assertEqual(stopped, ["tcp", "ipv6"])
        self.assertNoResult(done)
        layers[1].stopping.callback(None)
        layers[0].stopping.callback(None)
        self.assertEqual(stopped, ["tcp", "ipv6", "links"])
        self.successResultOf(done)

    def test_failed_stop_does_not_block_the_rest(self) -> None:
        """A layer whose stop fails is logged, and the layers below still stop."""
        stopped: list[str] = []
        top = NodeService()
        lower, upper = _Layer("links", stopped), _Layer("tcp", stopped)
        lower.setServiceParent(top)
        upper.setServiceParent(top)
        top.startService()
        with capturedLogs() as events:
            done = top.stopService()
            upper.stopping.errback(RuntimeError("boom"))
        self.assertEqual(stopped, ["tcp", "links"])
        lower.stopping.callback(None)
        self.successResultOf(done)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual([e["name"] for e in events if e.get("log_failure")], ["tcp"])
