"""
Tests for L{axl.admin.node}: the admin commands answered by whole in-process nodes (a star of
three on 127.0.0.1), over B's real admin socket; addPeer/removePeer change the running node.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase

from axl.admin.codec import AdminError
from axl.admin.node import admin_peer_uri
from tests.inprocess import InProcessNodesTestCase, wait_until
from tests.realnode import AdminError as RealNodeAdminError
from tests.realnode import admin_request
from tests.test_e2e_twistd import free_port, free_ports


def _ask(port: int, request: str, **arguments: str) -> dict[str, Any]:
    """One admin request; the envelope's status with its response or error."""
    try:
        return {"status": "success", "response": admin_request(port, request, **arguments)}
    except RealNodeAdminError as e:
        return {"status": "error", "error": str(e)}


class PeerURITests(SynchronousTestCase):
    def test_go_errors(self) -> None:
        """addPeer's URI errors use Yggdrasil's strings (section 1.6.11)."""
        cases = {
            "tcp://[::1": "unable to parse peering URI: parse \"tcp://[::1\": Invalid IPv6 URL",
            "foo://1.2.3.4:5": "link schema unknown",
            "": "link schema unknown",
            "tls://h:1?priority=300": "priority value is invalid",
            "tls://h:1?priority=x": "priority value is invalid",
            "tls://h:1?key=zz": "pinned public key is invalid",
            "tls://h:1?password=" + "p" * 65: "invalid password supplied",
            "tls://h:1?maxbackoff=1s": "max backoff duration invalid",
            "tls://h:1?maxbackoff=soon": "max backoff duration invalid",
            "tls://h": "peer URI 'tls://h': a port is required (scheme://host:port)",
        }
        for uri, message in cases.items():
            with self.assertRaises(AdminError, msg=uri) as e:
                admin_peer_uri(uri)
            self.assertEqual(str(e.exception), message)
        self.assertEqual(admin_peer_uri("tls://h:1?priority=3").priority, 3)


class SourceTests(SynchronousTestCase):
    """NodeAdminSource over stand-ins for the layers."""

    def test_peers(self) -> None:
        from types import SimpleNamespace

        from twisted.internet.task import Clock

        from axl.admin.node import NodeAdminSource

        clock = Clock()
        clock.advance(100)
        key = bytes(range(32))
        class Link:  # LinkCore's members the source reads (weakly referenced, as links are)
            remote_key, priority, rx_bytes, tx_bytes = key, 3, 10, 20

            def uptime(self) -> float:
                return 5.0

        link = Link()
        entries = [
            SimpleNamespace(uri="tls://a:1", inbound=False, up=False, link=None,
                            last_error="dial failed: refused", last_error_time=97.5),
            SimpleNamespace(uri="tls://1.2.3.4:5", inbound=True, up=False, link=object(),
                            last_error="", last_error_time=None),  # still handshaking
            SimpleNamespace(uri="tls://1.2.3.4:6", inbound=True, up=True, link=link,
                            last_error="old", last_error_time=1.0),
        ]  # fmt: skip
        routed = SimpleNamespace(port=4, cost=9, rtt=0.25)
        router = SimpleNamespace(peers=SimpleNamespace(get=lambda l: routed if l is link else None))
        source = NodeAdminSource(b"\0" * 32, clock, SimpleNamespace(entries=lambda: entries),
                                 router, None, None)  # fmt: skip
        down, up = source.peers()
        self.assertEqual((down.remote, down.up, down.last_error, down.last_error_age),
                         ("tls://a:1", False, "dial failed: refused", 2.5))  # fmt: skip
        self.assertEqual((up.key, up.port, up.cost, up.latency, up.priority, up.uptime),
                         (key, 4, 9, 0.25, 3, 5.0))  # fmt: skip
        self.assertEqual((up.rate_recvd, up.rate_sent), (0, 0))
        link.rx_bytes, link.tx_bytes = 1010, 520
        clock.advance(2)
        self.assertEqual((source.peers()[1].rate_recvd, source.peers()[1].rate_sent), (500, 250))


    def test_drops_include_held_limits(self) -> None:
        """
        /metrics' drop reasons include what the bounded set-up queues (path lookups, address
        lookups, sessions) could not hold, beside the layers' invalid-packet counters.
        """
        from types import SimpleNamespace

        from twisted.internet.task import Clock

        from axl.admin.node import NodeAdminSource

        router = SimpleNamespace(pathfinder=SimpleNamespace(held_dropped=3))
        sessions = SimpleNamespace(drops={"session_init_invalid": 2}, buffer_dropped=5)
        ipv6 = SimpleNamespace(drops={}, pending_dropped=7)
        source = NodeAdminSource(b"\0" * 32, Clock(), SimpleNamespace(entries=list), router,  # type: ignore[arg-type]
                                 sessions, None, ipv6=ipv6)  # type: ignore[arg-type]  # fmt: skip
        self.assertEqual(
            source.drops(),
            {"session_init_invalid": 2, "path_lookup_held_limit": 3,
             "address_lookup_held_limit": 7, "session_held_limit": 5},
        )  # fmt: skip


class StarTests(InProcessNodesTestCase):
    """A listens; B and C peer to A; B has an admin socket."""

    timeout = 60

    @inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        listen_port, self.admin_port = free_ports(2)
        self.listen = f"tcp://127.0.0.1:{listen_port}"
        self.a = self.start_node("A", {"Listen": [self.listen]})
        self.b = self.start_node("B", {"Peers": [self.listen],
                                       "AdminListen": f"tcp://127.0.0.1:{self.admin_port}"})  # fmt: skip
        self.c = self.start_node("C", {"Peers": [self.listen]})
        yield self.until(lambda: len(self.a.links.links()) == 2 and len(self.b.router.tree.infos) >= 3)

    def until(self, check, limit: float = 20.0):  # type: ignore[no-untyped-def]
        return Deferred.fromCoroutine(wait_until("the condition", check, limit))

    def ask(self, request: str, **arguments: str):  # type: ignore[no-untyped-def]
        return deferToThread(_ask, self.admin_port, request, **arguments)

    @inlineCallbacks
    def test_tables(self):  # type: ignore[no-untyped-def]
        a_key = self.a.identity.public_key
        doc = yield self.ask("getSelf")
        self.assertEqual(doc["response"]["key"], self.b.identity.public_key.hex())
        self.assertEqual(doc["response"]["address"], self.b.identity.ipv6)
        self.assertEqual(doc["response"]["build_name"], "axl")
        self.assertEqual(doc["response"]["routing_entries"], len(self.b.router.tree.infos))
        doc = yield self.ask("getPeers")
        [peer] = doc["response"]["peers"]
        self.assertEqual((peer["remote"], peer["up"], peer["inbound"], peer["key"], peer["port"]),
                         (self.listen, True, False, a_key.hex(), 1))  # fmt: skip
        self.assertEqual(peer["address"], self.a.identity.ipv6)
        self.assertGreater(peer["bytes_recvd"], 0)
        self.assertGreater(peer["bytes_sent"], 0)
        self.assertGreaterEqual(peer["cost"], 1)
        self.assertIsInstance(peer["uptime"], float)
        self.assertNotIn("last_error", peer)
        doc = yield self.ask("getTree")
        keys = [row["key"] for row in doc["response"]["tree"]]
        self.assertEqual(keys, sorted(keys))
        self.assertEqual(len(keys), 3)

    @inlineCallbacks
    def test_remote_requests(self):  # type: ignore[no-untyped-def]
        a_key = self.a.identity.public_key.hex()
        doc = yield self.ask("getNodeInfo", key=a_key)
        self.assertEqual(doc["status"], "success", doc)
        self.assertEqual(doc["response"][a_key]["buildname"], "axl")
        doc = yield self.ask("debug_remoteGetSelf", key=a_key)
        self.assertEqual(doc["response"], {self.a.identity.ipv6: {
            "key": a_key, "routing_entries": str(len(self.a.router.tree.infos))}})  # fmt: skip
        doc = yield self.ask("debug_remoteGetPeers", key=a_key)
        peers = doc["response"][self.a.identity.ipv6]["keys"]
        self.assertEqual(sorted(peers), sorted([self.b.identity.public_key.hex(),
                                                self.c.identity.public_key.hex()]))  # fmt: skip
        doc = yield self.ask("debug_remoteGetTree", key=a_key)
        self.assertEqual(len(doc["response"][self.a.identity.ipv6]["keys"]), 3)
        doc = yield self.ask("getSessions")
        [session] = doc["response"]["sessions"]
        self.assertEqual(session["key"], a_key)
        self.assertGreater(session["bytes_recvd"], 0)
        doc = yield self.ask("getPaths")
        self.assertIn(a_key, [p["key"] for p in doc["response"]["paths"]])

    @inlineCallbacks
    def test_add_and_remove_peer(self):  # type: ignore[no-untyped-def]
        """addPeer dials now (not in the config file); removePeer closes the link."""
        second = self.listen.replace("127.0.0.1", "localhost")
        doc = yield self.ask("addPeer", uri=second + "?priority=2")
        self.assertEqual((doc["status"], doc["response"]), ("success", {}))
        self.assertNotIn(second, self.b.config.peers)
        yield self.until(lambda: len(self.a.links.links()) == 3)
        doc = yield self.ask("addPeer", uri=second)
        self.assertEqual(doc["error"], "peer is already configured")
        doc = yield self.ask("getPeers")
        rows = {p["remote"]: p for p in doc["response"]["peers"]}
        self.assertTrue(rows[second]["up"])
        self.assertEqual(rows[second]["priority"], 2)
        doc = yield self.ask("removePeer", uri=second)
        self.assertEqual(doc["status"], "success")
        yield self.until(lambda: len(self.a.links.links()) == 2)
        doc = yield self.ask("getPeers")
        self.assertEqual([p["remote"] for p in doc["response"]["peers"]], [self.listen])
        doc = yield self.ask("removePeer", uri=second)
        self.assertEqual(doc["error"], "peer is not configured")

    @inlineCallbacks
    def test_down_peer(self):  # type: ignore[no-untyped-def]
        """A configured peer that cannot be dialled shows down with its error's age in ns."""
        dead = f"tcp://127.0.0.1:{free_port()}"
        yield self.ask("addPeer", uri=dead)
        yield self.until(lambda: any(e.last_error for e in self.b.links.entries() if e.uri == dead))
        doc = yield self.ask("getPeers")
        row = next(p for p in doc["response"]["peers"] if p["remote"] == dead)
        self.assertEqual(list(row), ["remote", "up", "inbound", "key", "port", "priority", "cost",
                                     "last_error_time", "last_error"])  # fmt: skip
        self.assertIn("refused", row["last_error"])
        self.assertIsInstance(row["last_error_time"], int)
        self.assertLess(row["last_error_time"], 60 * 10**9)
        yield self.ask("removePeer", uri=dead)
