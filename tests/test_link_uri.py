# -*- test-case-name: tests.test_link_uri -*-
"""
Tests for L{axl.link.uri}: peer and listen URIs (spec/yggdrasil-wire.md 2.1-2.2).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from axl.errors import ConfigError
from axl.link.uri import inbound_uri, parse_go_duration, parse_listen_uri, parse_peer_uri, redact_uri

KEY = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"


class PeerURITests(SynchronousTestCase):
    def test_ipv4(self) -> None:
        """tls://1.2.3.4:9001 parses to scheme, host, port, defaults, and its link URI."""
        uri = parse_peer_uri("tls://1.2.3.4:9001")
        self.assertEqual((uri.scheme, uri.host, uri.port), ("tls", "1.2.3.4", 9001))
        self.assertEqual((uri.keys, uri.priority, uri.password), (frozenset(), 0, b""))
        self.assertEqual((uri.max_backoff, uri.sni, uri.link_uri), (None, None, "tls://1.2.3.4:9001"))
        self.assertTrue(uri.host_is_ip)

    def test_ipv6(self) -> None:
        """An IPv6 literal in brackets, with or without a zone."""
        uri = parse_peer_uri("tcp://[::1]:9001")
        self.assertEqual((uri.host, uri.port, uri.is_ipv6), ("::1", 9001, True))
        zoned = parse_peer_uri("tcp://[fe80::1%25eth0]:9001")
        self.assertEqual(zoned.host, "fe80::1%eth0")
        self.assertTrue(zoned.host_is_ip)

    def test_hostname(self) -> None:
        """A host name is kept as is and is not an IP."""
        uri = parse_peer_uri("tls://node.example.org:443")
        self.assertEqual(uri.host, "node.example.org")
        self.assertFalse(uri.host_is_ip)

    def test_options(self) -> None:
        """key= (repeatable), priority=, password=, maxbackoff=, sni= are read; link URI drops them."""
        other = "ff" * 32
        uri = parse_peer_uri(
            f"tls://h:1?key={KEY}&key={other}&priority=7&password=p%40ss&maxbackoff=1m30s&sni=x.org"
        )
        self.assertEqual(uri.keys, {bytes.fromhex(KEY), bytes.fromhex(other)})
        self.assertEqual((uri.priority, uri.password), (7, b"p@ss"))
        self.assertEqual((uri.max_backoff, uri.sni), (90.0, "x.org"))
        self.assertEqual(uri.link_uri, "tls://h:1")
        self.assertEqual(uri.ignored, ())

    def test_unknown_options_reported(self) -> None:
        """Options we do not use are listed in ignored (for a warning), not an error."""
        self.assertEqual(parse_peer_uri("tcp://h:1?foo=1&origin=x").ignored, ("foo", "origin"))

    def test_unix(self) -> None:
        """unix:///path parses to its path."""
        uri = parse_peer_uri("unix:///run/ygg.sock?priority=1")
        self.assertEqual((uri.scheme, uri.path, uri.priority), ("unix", "/run/ygg.sock", 1))

    def test_errors(self) -> None:
        """Every malformed peer URI is a ConfigError that quotes it."""
        bad = [
            "", "tls://h", "tls://:9001", "tls://h:0", "tls://h:99999", "tls://h:x",
            "http://h:1", "quic://h:1/p", "tls://h:1/path", "unix://relative",
            f"tls://h:1?key={KEY[:-2]}", "tls://h:1?key=zz", "tls://h:1?priority=256",
            "tls://h:1?priority=-1", "tls://h:1?priority=", "tls://h:1?password=" + "x" * 65,
            "tls://h:1?maxbackoff=10", "tls://h:1?maxbackoff=4s", "tls://[::1:1",
        ]  # fmt: skip
        for text in bad:
            with self.subTest(uri=text):
                e = self.assertRaises(ConfigError, parse_peer_uri, text)
                self.assertIn(repr(text), str(e))

    def test_password_limit(self) -> None:
        """A 64-byte password is allowed; 65 bytes are not (spec 2.2)."""
        self.assertEqual(len(parse_peer_uri("tcp://h:1?password=" + "x" * 64).password), 64)

    def test_unknown_scheme_message(self) -> None:
        """An unknown scheme is a config error that lists the schemes axl speaks."""
        e = self.assertRaises(ConfigError, parse_peer_uri, "http://h:1")
        self.assertIn("unknown scheme 'http'", str(e))
        self.assertIn("quic://", str(e))

    def test_every_yggdrasil_scheme(self) -> None:
        """quic, ws, wss, socks and sockstls dial URIs parse (extras section 2.1)."""
        self.assertEqual(parse_peer_uri("quic://h:1").scheme, "quic")
        ws = parse_peer_uri("ws://h:1/ygg/path?priority=2&foo=bar")
        self.assertEqual((ws.path, ws.query, ws.priority), ("/ygg/path", "priority=2&foo=bar", 2))
        self.assertEqual(ws.link_uri, "ws://h:1/ygg/path")
        self.assertEqual(parse_peer_uri("wss://h:1").path, "")
        self.assertEqual(parse_peer_uri("wss://h/ygg").port, 443)  # ws/wss default ports
        self.assertEqual(parse_peer_uri("ws://h").port, 80)
        self.assertRaises(ConfigError, parse_listen_uri, "ws://127.0.0.1")
        self.assertEqual(parse_peer_uri("socks://p:1/t:2").target_port, 2)

    def test_sni_only_where_used(self) -> None:
        """sni= is used by tls and sockstls; quic and wss ignore it (extras 2.2)."""
        self.assertEqual(parse_peer_uri("tls://h:1?sni=x").sni, "x")
        for text in ("quic://h:1?sni=x", "wss://h:1?sni=x"):
            uri = parse_peer_uri(text)
            self.assertEqual((uri.sni, uri.ignored), (None, ("sni",)))


class ListenURITests(SynchronousTestCase):
    def test_listen_forms(self) -> None:
        """Listen URIs accept IP literals, an empty host, and port 0."""
        self.assertEqual(parse_listen_uri("tls://0.0.0.0:9001").host, "0.0.0.0")
        self.assertEqual(parse_listen_uri("tls://[::]:0").port, 0)
        self.assertEqual(parse_listen_uri("tcp://:9001").host, "")
        self.assertEqual(parse_listen_uri("tls://127.0.0.1:1?password=x&priority=2").priority, 2)

    def test_listen_errors(self) -> None:
        """A host name or a missing port on a listener is a ConfigError."""
        for text in ("tls://localhost:9001", "tls://0.0.0.0", "socks://h:1"):
            with self.subTest(uri=text):
                self.assertRaises(ConfigError, parse_listen_uri, text)

    def test_dial_only_schemes(self) -> None:
        """wss:// cannot listen, with Yggdrasil's reason (extras 4.4); nor can socks."""
        e = self.assertRaises(ConfigError, parse_listen_uri, "wss://127.0.0.1:1")
        self.assertIn("WSS listener not supported", str(e))
        self.assertRaises(ConfigError, parse_listen_uri, "sockstls://127.0.0.1:1/h:2")

    def test_ws_listen_origins(self) -> None:
        """origin= (repeatable) is a ws listen option."""
        uri = parse_listen_uri("ws://127.0.0.1:0?origin=*.good.example&origin=https://x.example")
        self.assertEqual(uri.origins, ("*.good.example", "https://x.example"))
        self.assertEqual(parse_listen_uri("tls://127.0.0.1:0?origin=x").ignored, ("origin",))

    def test_dial_options_ignored(self) -> None:
        """key= and maxbackoff= mean nothing on a listener; they are reported as ignored."""
        uri = parse_listen_uri(f"tls://0.0.0.0:1?key={KEY}&maxbackoff=1s")
        self.assertEqual((uri.keys, uri.ignored), (frozenset(), ("key", "maxbackoff")))

    def test_inbound_uri(self) -> None:
        """Inbound links are named scheme://remote-ip:port, IPv6 in brackets."""
        self.assertEqual(inbound_uri("tls", "1.2.3.4", 51234), "tls://1.2.3.4:51234")
        self.assertEqual(inbound_uri("tcp", "::1", 5), "tcp://[::1]:5")


class DurationTests(SynchronousTestCase):
    def test_go_durations(self) -> None:
        """Go duration strings convert to seconds; junk raises ValueError."""
        self.assertEqual(parse_go_duration("30s"), 30.0)
        self.assertEqual(parse_go_duration("1h8m16s"), 4096.0)
        self.assertEqual(parse_go_duration("1.5h"), 5400.0)
        self.assertEqual(parse_go_duration("1500ms"), 1.5)
        self.assertEqual(parse_go_duration("0"), 0.0)
        for junk in ("", "10", "s", "1x", "1s2", "-1s"):
            with self.subTest(text=junk):
                self.assertRaises(ValueError, parse_go_duration, junk)


class RedactTests(SynchronousTestCase):
    def test_redact(self) -> None:
        """Logs show a SOCKS user but never its password; other URIs are unchanged."""
        self.assertEqual(redact_uri("socks://u:p%40ss@proxy:1/h:2"), "socks://u:***@proxy:1/h:2")
        for text in ("socks://u@proxy:1/h:2", "tls://h:1", "ws://h:1/a:b@c", "unix:///x"):
            self.assertEqual(redact_uri(text), text)
