"""
Tests for the entry points of the integrations: option parsing of C{mcp-router}/C{a2a-server}
(and the twistd plugins that share it), the listening service and its log line.
"""

from __future__ import annotations

import io

from twisted.application.service import IServiceMaker
from twisted.internet.testing import MemoryReactor
from twisted.logger import capturedLogs
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from axl.integrations import a2a_tap, cli, router_tap
from axl.integrations._serve import http_service


class RouterOptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """mcp-router defaults to 127.0.0.1:9003, no state file, 30 s timeout."""
        o = router_tap.Options()
        o.parseOptions([])
        self.assertEqual((o["host"], o["port"], o["state"], o["timeout"]), ("127.0.0.1", 9003, None, 30.0))

    def test_axl_flags(self) -> None:
        """AXL's '--port N' spelling works, as does '--port=N'."""
        for argv in (["--port", "9100"], ["--port=9100"]):
            o = router_tap.Options()
            o.parseOptions(argv)
            self.assertEqual(o["port"], 9100)

    def test_bad_values(self) -> None:
        """Out-of-range ports, non-IP hosts and non-positive timeouts are usage errors."""
        for argv in (["--port", "70000"], ["--port", "x"], ["--host", "localhost"], ["--timeout", "0"]):
            self.assertRaises(usage.UsageError, router_tap.Options().parseOptions, argv)


class A2AOptionsTests(SynchronousTestCase):
    def test_flags(self) -> None:
        """a2a-server takes --port, --router and --node-url (the node URL is not hard-coded)."""
        o = a2a_tap.Options()
        o.parseOptions(["--port", "9104", "--router", "http://127.0.0.1:9103", "--node-url", "http://[::1]:9102"])
        self.assertEqual((o["port"], o["router"], o["node-url"]), (9104, "http://127.0.0.1:9103", "http://[::1]:9102"))

    def test_defaults(self) -> None:
        """Defaults are AXL's: port 9004, router :9003, node :9002."""
        o = a2a_tap.Options()
        o.parseOptions([])
        self.assertEqual(
            (o["port"], o["router"], o["node-url"]), (9004, "http://127.0.0.1:9003", "http://127.0.0.1:9002")
        )

    def test_bad_url(self) -> None:
        """URLs without an http(s) scheme are usage errors."""
        for argv in (["--router", "127.0.0.1:9003"], ["--node-url", "ftp://x"]):
            self.assertRaises(usage.UsageError, a2a_tap.Options().parseOptions, argv)


class ServiceTests(SynchronousTestCase):
    def test_listens_and_logs(self) -> None:
        """The HTTP service binds the given interface and logs '<banner> listening on <url>'."""
        reactor = MemoryReactor()
        service = http_service(reactor, "127.0.0.1", 9003, Resource(), "MCP Router")
        with capturedLogs() as events:
            service.startService()
        (port, factory, backlog, interface) = reactor.tcpServers[0]
        self.assertEqual((port, interface), (9003, "127.0.0.1"))
        texts = [e["log_format"].format(**e) for e in events if "banner" in e]
        self.assertEqual(texts, ["MCP Router listening on http://127.0.0.1:9003"])

    def test_ipv6(self) -> None:
        """An IPv6 host is bound as such and bracketed in the log line."""
        reactor = MemoryReactor()
        service = http_service(reactor, "::1", 9004, Resource(), "A2A server")
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(reactor.tcpServers[0][3], "::1")
        self.assertIn("http://[::1]:9004", [e["log_format"].format(**e) for e in events if "banner" in e][0])

    def test_make_service(self) -> None:
        """Both taps build a service from parsed options without starting anything."""
        for tap in (router_tap, a2a_tap):
            o = tap.Options()
            o.parseOptions(["--port", "0"])
            self.assertTrue(hasattr(tap.makeService(o), "startService"))


class ServiceFactoryTests(SynchronousTestCase):
    def test_router_service(self) -> None:
        """router_service() listens where asked, with any reactor (a node can start its router)."""
        reactor = MemoryReactor()
        router_tap.router_service(reactor, "127.0.0.1", 9103).startService()
        self.assertEqual(reactor.tcpServers[0][0], 9103)

    def test_a2a_service(self) -> None:
        """a2a_service() listens where asked."""
        reactor = MemoryReactor()
        a2a_tap.a2a_service(reactor, "::1", 9104, "http://127.0.0.1:9103", "http://127.0.0.1:9102").startService()
        self.assertEqual((reactor.tcpServers[0][0], reactor.tcpServers[0][3]), (9104, "::1"))


class PluginTests(SynchronousTestCase):
    def test_plugins(self) -> None:
        """twistd finds axl-mcp-router and axl-a2a, backed by the same option classes."""
        import twisted.plugins

        makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
        self.assertIsInstance(makers["axl-mcp-router"].options(), router_tap.Options)
        self.assertIsInstance(makers["axl-a2a"].options(), a2a_tap.Options)


class RunTests(SynchronousTestCase):
    def test_usage_error_exits_2(self) -> None:
        """A bad flag prints the error and usage to stderr and exits with status 2."""
        err = io.StringIO()
        e = self.assertRaises(SystemExit, cli.mcp_router_main, ["--port", "-1"], err)
        self.assertEqual(e.code, 2)
        self.assertIn("mcp-router: --port must be 0-65535", err.getvalue())
