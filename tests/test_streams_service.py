"""Tests for L{axl.streams.service}: layer wiring, plugin discovery and the listener service."""

from __future__ import annotations

import os
import sys
import textwrap
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from axl.config import NodeConfig, config_from_dict
from axl.crypto.keys import Identity
from axl.errors import StartupError
from axl.streams.sender import Dial
from axl.streams.service import (
    MessageListenerService,
    build_streams_layer,
    discover_streams,
)

PLUGIN = textwrap.dedent(
    """
    from zope.interface import implementer, provider
    from twisted.plugin import IPlugin
    from axl.streams.interfaces import IStream, IStreamFactory

    @implementer(IStream)
    class Echo:
        name = "echo"
        def matches(self, envelope): return "echo" in envelope
        def handle(self, envelope, peer_key): return None
        def error_reply(self, envelope, message): return None

    @provider(IPlugin, IStreamFactory)
    class EchoFactory:
        name = "echo"
        @staticmethod
        def make_stream(config, http): return Echo()

    @provider(IPlugin, IStreamFactory)
    class OffFactory:
        name = "off"
        @staticmethod
        def make_stream(config, http): return None
    """
)


def _no_dial(key: bytes, port: int) -> Any:
    raise AssertionError("nothing is sent in these tests")


class ServiceTests(SynchronousTestCase):
    def config(self, **extra: Any) -> NodeConfig:
        return config_from_dict(extra)

    def layer(self, config: NodeConfig, plugin_streams: Any = (), dial: Dial = _no_dial) -> Any:
        return build_streams_layer(
            config, Identity(b"\x05" * 32).public_key, Clock(), dial, StubTreq(Resource()), plugin_streams
        )

    def test_builtin_order_and_enablement(self) -> None:
        """MCP comes first, then A2A, then plugin streams; each built-in is enabled by its address."""
        layer = self.layer(self.config(router_addr="http://127.0.0.1", send_idle_close_secs=2.5))
        self.assertEqual(layer.registry.names, ["mcp", "a2a"])
        entries = layer.registry._entries
        self.assertEqual([e.enabled for e in entries], [True, False])
        self.assertEqual(entries[0].stream.route_url, "http://127.0.0.1:9003/route")
        self.assertEqual(layer.sender.port, 7000)
        self.assertEqual(layer.sender.idle_close, 2.5)  # the config key reaches the sender

    def test_connect_timeout_reaches_the_sender(self) -> None:
        """The sender's connect bound is connect_timeout_secs plus the guard."""
        layer = self.layer(self.config(connect_timeout_secs=4))
        self.assertEqual(layer.sender.connect_timeout, 6.0)

    def test_plugin_discovery(self) -> None:
        """A module dropped into a plugin package that provides IStreamFactory adds its stream."""
        base = self.mktemp()
        pkg = os.path.join(base, "axl_test_plugins")
        os.makedirs(pkg)
        with open(os.path.join(pkg, "__init__.py"), "w") as f:
            f.write("")
        with open(os.path.join(pkg, "echo_stream.py"), "w") as f:
            f.write(PLUGIN)
        sys.path.insert(0, base)
        import pkgutil

        pkgutil.get_importer(
            base
        )  # fills the path importer cache, as Twisted's plugin scan wants
        self.addCleanup(sys.path.remove, base)
        self.addCleanup(
            lambda: [
                sys.modules.pop(m)
                for m in list(sys.modules)
                if m.startswith("axl_test_plugins")
            ]
        )
        import axl_test_plugins  # type: ignore[import-not-found]

        streams = discover_streams(self.config(), None, axl_test_plugins)
        self.assertEqual([s.name for s in streams], ["echo"])
        layer = self.layer(self.config(), streams)
        self.assertEqual(layer.registry.names, ["mcp", "a2a", "echo"])

    def test_listener_service(self) -> None:
        """The listener binds in startService; a failing endpoint is a StartupError."""
        layer = self.layer(self.config())

        class Port:
            stopped = False

            def stopListening(self) -> Any:
                self.stopped = True
                return succeed(None)

        port = Port()

        class Endpoint:
            def __init__(self, result: Any) -> None:
                self.result = result
                self.factory: Any = None

            def listen(self, factory: Any) -> Any:
                self.factory = factory
                return self.result

        ok = Endpoint(succeed(port))
        service = MessageListenerService(layer, ok, 7000)
        service.startService()
        self.assertIs(ok.factory, layer.factory)
        service.stopService()
        self.assertTrue(port.stopped)
        bad = MessageListenerService(
            layer, Endpoint(fail(OSError("port in use"))), 7000
        )
        self.assertRaises(StartupError, bad.startService)

