# -*- test-case-name: tests.test_link_interop -*-
"""
Interop of the extra transports with the real Yggdrasil binaries in C{../shared/bin}
(spec/yggdrasil-extras.md section 9): ws both ways, wss (the real node dialling our WebSocket
listener behind TLS), socks and sockstls (the real node dialling us through a SOCKS5 proxy, and
us dialling it), quic both ways; with 0.5.14 and 0.5.12. Everything runs on 127.0.0.1; skipped
when the binaries are absent.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint

from axl.link.endpoints import TLSServerEndpoint
from axl.link.protocol import LinkFactory
from axl.link.tls import LinkTLS
from axl.link.uri import parse_listen_uri
from axl.link.ws import WebSocketServerEndpoint
from tests.inprocess import InProcessNodesTestCase
from tests.test_e2e_twistd import free_port
from tests.transport_helpers import RealNode, Socks5Proxy, free_udp_port, wait_for
from tests.vectors import identity


class _Interop:
    """The cases, mixed into one TestCase per real-node version."""

    timeout = 120
    version = "0.5.14"

    def ours_up(self, node: Any, key: bytes) -> bool:
        return any(link.remote_key == key for link in node.links.links())

    @inlineCallbacks
    def dial_real(self, real_listen: str, our_peer: str) -> Any:
        """The real node listens on C{real_listen}; ours dials C{our_peer}; both see the link."""
        real = yield RealNode(self, self.version).start(listen=[real_listen])
        ours = self.start_node("A", {"Peers": [our_peer]})
        yield wait_for("our link to the real node", lambda: self.ours_up(ours, real.key))
        entry = yield real.wait_peer_up(ours.identity.public_key)
        self.assertTrue(entry["inbound"])
        return real, ours, entry

    @inlineCallbacks
    def real_dials(self, our_listen: str, real_peer: str) -> Any:
        """Ours listens on C{our_listen}; the real node dials C{real_peer}; both see the link."""
        ours = self.start_node("A", {"Listen": [our_listen]})
        real = yield RealNode(self, self.version).start(peers=[real_peer])
        yield wait_for("the real node's link to us", lambda: self.ours_up(ours, real.key))
        entry = yield real.wait_peer_up(ours.identity.public_key)
        self.assertFalse(entry["inbound"])
        self.assertEqual(entry["remote"], real_peer.split("?")[0])
        return real, ours, entry

    @inlineCallbacks
    def test_ws_dial(self) -> Any:
        """Ours dials the real node's ws:// listener on an arbitrary path."""
        port = free_port()
        _, _, entry = yield self.dial_real(f"ws://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/any/path")
        self.assertTrue(entry["remote"].startswith("ws://127.0.0.1:"))

    @inlineCallbacks
    def test_ws_listen(self) -> Any:
        """The real node dials our ws:// listener with a path and priority=2."""
        port = free_port()
        _, ours, entry = yield self.real_dials(f"ws://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ygg?priority=2")
        self.assertEqual(entry["priority"], 2)
        self.assertEqual(ours.links.links()[0].priority, 2)

    @inlineCallbacks
    def test_wss_real_dials(self) -> Any:
        """The real node dials wss://localhost:P/p: our WebSocket listener behind TLS (Ed25519)."""
        ours = self.start_node("A", {})
        port = free_port()
        tls = LinkTLS(identity("C"))
        ws = WebSocketServerEndpoint(
            TLSServerEndpoint(TCP4ServerEndpoint(reactor, port, interface="127.0.0.1"),
                              tls.server_creator(), clock=reactor),
            parse_listen_uri(f"ws://127.0.0.1:{port}"),
        )  # fmt: skip
        listener = parse_listen_uri(f"ws://127.0.0.1:{port}")
        lp = yield ws.listen(LinkFactory(lambda addr: ours.links._accept(listener, addr)))
        self.addCleanup(lp.stopListening)
        real = yield RealNode(self, self.version).start(peers=[f"wss://localhost:{port}/p"])
        yield wait_for("the wss link", lambda: self.ours_up(ours, real.key))
        entry = yield real.wait_peer_up(ours.identity.public_key)
        self.assertEqual(entry["remote"], f"wss://localhost:{port}/p")

    @inlineCallbacks
    def test_socks_real_dials(self) -> Any:
        """The real node dials our tcp:// listener through our test SOCKS5 proxy with a user."""
        proxy = Socks5Proxy(("u", "p"))
        proxy_port = yield proxy.start()
        self.addCleanup(proxy.stop)
        port = free_port()
        yield self.real_dials(f"tcp://127.0.0.1:{port}", f"socks://u:p@127.0.0.1:{proxy_port}/127.0.0.1:{port}")
        self.assertEqual(proxy.received[0], b"\x05\x02\x00\x02")
        self.assertEqual(proxy.requests[0], (1, "127.0.0.1", port))

    @inlineCallbacks
    def test_sockstls_real_dials(self) -> Any:
        """The real node dials our tls:// listener via sockstls://localhost:P/127.0.0.1:T."""
        proxy = Socks5Proxy()
        proxy_port = yield proxy.start()
        self.addCleanup(proxy.stop)
        port = free_port()
        yield self.real_dials(f"tls://127.0.0.1:{port}", f"sockstls://localhost:{proxy_port}/127.0.0.1:{port}")
        self.assertEqual(proxy.received[0], b"\x05\x01\x00")

    @inlineCallbacks
    def test_sockstls_dial(self) -> Any:
        """Ours dials the real node's tls:// listener via sockstls://, the target as a name."""
        proxy = Socks5Proxy()
        proxy_port = yield proxy.start()
        self.addCleanup(proxy.stop)
        port = free_port()
        yield self.dial_real(f"tls://127.0.0.1:{port}", f"sockstls://localhost:{proxy_port}/localhost:{port}")
        self.assertEqual(proxy.requests[0], (3, "localhost", port))

    @inlineCallbacks
    def test_quic_dial(self) -> Any:
        """Ours dials the real node's quic:// listener, with password and priority."""
        port = free_udp_port()
        _, ours, entry = yield self.dial_real(f"quic://127.0.0.1:{port}?password=pw",
                                              f"quic://127.0.0.1:{port}?password=pw&priority=4")  # fmt: skip
        self.assertEqual(entry["priority"], 4)
        self.assertTrue(entry["remote"].startswith("quic://127.0.0.1:"))

    @inlineCallbacks
    def test_quic_listen(self) -> Any:
        """The real node dials our quic:// listener."""
        port = free_udp_port()
        _, ours, entry = yield self.real_dials(f"quic://127.0.0.1:{port}", f"quic://127.0.0.1:{port}")
        self.assertTrue(ours.links.entries()[0].uri.startswith("quic://127.0.0.1:"))


class Interop0514Tests(_Interop, InProcessNodesTestCase):
    version = "0.5.14"


class Interop0512Tests(_Interop, InProcessNodesTestCase):
    version = "0.5.12"
