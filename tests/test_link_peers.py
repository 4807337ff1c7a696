# -*- test-case-name: tests.test_link_peers -*-
"""
Tests for L{axl.link.peers} (the peer manager) and L{axl.link.endpoints}, on an in-memory network
with a fake clock.
"""

from __future__ import annotations

import random

from zope.interface.verify import verifyObject

from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
    UNIXClientEndpoint,
    _WrapperEndpoint,
)
from twisted.internet.interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from axl.errors import ConfigError
from axl.link.endpoints import TLSServerEndpoint, client_endpoint, server_endpoint
from axl.link.peers import JITTER, MAX_HANDSHAKING_INBOUND, PeerManager
from axl.link.testing import MemoryNetwork, RecordingHandler, identity
from axl.link.tls import LinkTLS
from axl.link.uri import parse_listen_uri, parse_peer_uri

A, B, C = identity(1), identity(2), identity(3)
HUB = "tls://127.0.0.1:9001"
TOPOLOGY_FIELDS = ["uri", "up", "inbound", "public_key", "root", "port", "coords"]


class ZeroRandom(random.Random):
    """Jitter-free: every wait is exactly min(2**n, cap)."""

    def random(self) -> float:
        return 0.0


class Setup:
    def __init__(self, tls: bool = True) -> None:
        self.clock = Clock()
        self.net = MemoryNetwork(self.clock, tls=tls)

    def manager(self, ident, **kw) -> PeerManager:
        kw.setdefault("rng", ZeroRandom())
        return PeerManager(
            ident,
            self.clock,
            dial=self.net.dial(ident),
            listen_endpoint=self.net.listen_endpoint(ident),
            **kw,
        )

    def hub_and_spoke(self, hub_kw=None, spoke_kw=None) -> tuple[PeerManager, PeerManager]:
        hub = self.manager(A, **{"listen": [HUB], **(hub_kw or {})})
        spoke = self.manager(B, **{"peers": [HUB], **(spoke_kw or {})})
        hub.startService()
        spoke.startService()
        self.net.flush()
        return hub, spoke


class PeeringTests(SynchronousTestCase):
    def test_hub_and_spoke_up(self) -> None:
        """A spoke dialling a hub: both tables show the other up, with key and direction."""
        s = Setup()
        hub, spoke = s.hub_and_spoke()
        [out] = spoke.peers_info()
        [inb] = hub.peers_info()
        self.assertEqual(list(out)[:7], TOPOLOGY_FIELDS)
        self.assertEqual((out["uri"], out["up"], out["inbound"]), (HUB, True, False))
        self.assertEqual(out["public_key"], A.public_key.hex())
        self.assertEqual((inb["up"], inb["inbound"]), (True, True))
        self.assertEqual(inb["public_key"], B.public_key.hex())
        self.assertRegex(inb["uri"], r"^tls://10\.0\.0\.1:\d+$")
        self.assertEqual((out["root"], out["port"], out["coords"]), ("", 0, None))
        self.assertEqual(out["rx_bytes"], inb["tx_bytes"])
        self.assertGreaterEqual(out["rx_bytes"], 123)
        self.assertEqual(len(hub.links()), 1)

    def test_down_peer_listed(self) -> None:
        """A configured peer that is not connected is listed down with empty key and port 0."""
        s = Setup()
        spoke = s.manager(B, peers=[HUB + "?key=" + A.public_key.hex()])
        spoke.startService()
        [entry] = spoke.peers_info()
        self.assertEqual((entry["uri"], entry["up"], entry["public_key"], entry["port"]),
                         (HUB, False, "", 0))  # fmt: skip
        self.assertIn("dial failed", entry["last_error"])

    def test_handler_gets_links(self) -> None:
        """The handler set on the manager (before start) receives link_up and frames."""
        s = Setup()
        handler = RecordingHandler()
        hub = s.manager(A, listen=[HUB])
        hub.handler = handler
        spoke = s.manager(B, peers=[HUB])
        hub.startService()
        spoke.startService()
        s.net.flush()
        [link] = spoke.links()
        link.send_frame(2, b"sigreq")
        s.net.flush()
        self.assertEqual(handler.kinds(), ["up", "frame"])
        self.assertEqual(handler.events[0][1].remote_key, B.public_key)
        self.assertEqual(handler.frames(), [(2, b"sigreq")])

    def test_router_callables(self) -> None:
        """port_for_key, root_for_key, coords_for_key and latency_for_key fill the table."""
        s = Setup()
        hub, spoke = s.hub_and_spoke(
            spoke_kw=dict(port_for_key=lambda k: 3, root_for_key=lambda k: C.public_key,
                          coords_for_key=lambda k: (1, 3), latency_for_key=lambda k: 0.25))  # fmt: skip
        [entry] = spoke.peers_info()
        self.assertEqual((entry["port"], entry["root"], entry["coords"], entry["latency"]),
                         (3, C.public_key.hex(), [1, 3], 0.25))  # fmt: skip

    def test_several_links_to_one_key(self) -> None:
        """Two configured URIs reaching the same node give two links to one key (spec 2.4)."""
        s = Setup()
        hub = s.manager(A, listen=[HUB, "tcp://127.0.0.1:9002"])
        spoke = s.manager(B, peers=[HUB, "tcp://127.0.0.1:9002"])
        hub.startService()
        spoke.startService()
        s.net.flush()
        self.assertEqual([l.remote_key for l in spoke.links()], [A.public_key] * 2)
        self.assertEqual(len(hub.links()), 2)

    def test_duplicate_peer_ignored(self) -> None:
        """A peer URI configured twice (same link URI) is dialled once."""
        s = Setup()
        spoke = s.manager(B, peers=[HUB, HUB + "?priority=1"])
        self.assertEqual(len(spoke.peers_info()), 1)

    def test_bad_uri(self) -> None:
        """A malformed peer or listen URI is a ConfigError at construction."""
        s = Setup()
        self.assertRaises(ConfigError, s.manager, B, peers=["tls://nowhere"])
        self.assertRaises(ConfigError, s.manager, B, listen=["tls://localhost:1"])

    def test_plain_tcp(self) -> None:
        """tcp:// links come up the same way."""
        s = Setup(tls=False)
        hub = s.manager(A, listen=["tcp://127.0.0.1:9001"])
        spoke = s.manager(B, peers=["tcp://127.0.0.1:9001"])
        hub.startService()
        spoke.startService()
        s.net.flush()
        self.assertTrue(spoke.peers_info()[0]["up"])

    def test_stop_closes_everything(self) -> None:
        """Stopping both managers closes every link and leaves no timers behind."""
        s = Setup()
        hub, spoke = s.hub_and_spoke()
        d1, d2 = spoke.stopService(), hub.stopService()
        s.net.flush()
        self.successResultOf(d1)
        self.successResultOf(d2)
        self.assertEqual((hub.links(), spoke.links(), hub.peers_info()), ([], [], []))
        self.assertEqual(s.net.listeners, {})
        self.assertEqual(s.clock.getDelayedCalls(), [])


class RefusalTests(SynchronousTestCase):
    def test_wrong_pin(self) -> None:
        """A key= pin that does not match: down with the reason, and redialled with back-off."""
        s = Setup()
        hub, spoke = s.hub_and_spoke(spoke_kw=dict(peers=[HUB + "?key=" + C.public_key.hex()]))
        [entry] = spoke.peers_info()
        self.assertFalse(entry["up"])
        self.assertIn("pinned", entry["last_error"])
        self.assertEqual(hub.peers_info(), [])
        [e] = spoke.entries()
        self.assertEqual((e.failures, e.retry_delay), (1, 2.0))

    def test_password_mismatch(self) -> None:
        """Different link passwords: no link on either side."""
        s = Setup()
        hub, spoke = s.hub_and_spoke(
            hub_kw=dict(listen=[HUB + "?password=a"]), spoke_kw=dict(peers=[HUB + "?password=b"])
        )
        self.assertEqual((hub.links(), spoke.links()), ([], []))
        self.assertIn("password", spoke.peers_info()[0]["last_error"])

    def test_password_match(self) -> None:
        """The same password on listener and dialler: the link comes up."""
        s = Setup()
        hub, spoke = s.hub_and_spoke(
            hub_kw=dict(listen=[HUB + "?password=a"]), spoke_kw=dict(peers=[HUB + "?password=a"])
        )
        self.assertEqual(len(spoke.links()), 1)

    def test_allowed_public_keys(self) -> None:
        """A non-empty AllowedPublicKeys refuses other inbound keys and admits listed ones."""
        s = Setup()
        hub = s.manager(A, listen=[HUB], allowed_keys=[C.public_key])
        spoke_b = s.manager(B, peers=[HUB])
        spoke_c = s.manager(C, peers=[HUB])
        for m in (hub, spoke_b, spoke_c):
            m.startService()
        s.net.flush()
        self.assertEqual([l.remote_key for l in hub.links()], [C.public_key])
        self.assertEqual(spoke_b.links(), [])

    def test_self_connection_not_redialled(self) -> None:
        """A configured peer that is ourselves is refused and never dialled again."""
        s = Setup()
        me = s.manager(A, listen=[HUB], peers=[HUB])
        with capturedLogs() as events:
            me.startService()
            s.net.flush()
        self.assertEqual(me.links(), [])
        [entry] = me.entries()[:1]
        self.assertTrue(entry.is_self)
        self.assertIn("ourselves", entry.last_error)
        self.assertTrue(any("itself" in e["log_format"] for e in events))
        dials = len(s.net.dials)
        s.clock.advance(3600)
        s.net.flush()
        self.assertEqual(len(s.net.dials), dials)


class HandshakeFloodTests(SynchronousTestCase):
    """Issue 12: fair admission of inbound links, bans for flooding, aggregated refusal logs."""

    def hub(self, **kw) -> tuple[Setup, PeerManager, object]:
        s = Setup(tls=False)
        hub = s.manager(A, listen=["tcp://127.0.0.1:9001"], **kw)
        hub.startService()
        self.addCleanup(hub.stopService)
        factory, _ = s.net.listeners[("127.0.0.1", 9001)]
        return s, hub, factory

    def connect(self, factory, host: str, port: int):  # type: ignore[no-untyped-def]
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        proto = factory.buildProtocol(IPv4Address("TCP", host, port))
        if proto is not None:
            proto.makeConnection(StringTransport())
        return proto

    def test_pending_inbound_capped(self) -> None:
        """
        At most MAX_HANDSHAKING_INBOUND inbound links may be handshaking at once (from many
        addresses, one slot each); more are refused at accept (logged), and the silent ones time
        out after 6 s, freeing the slots.
        """
        s, hub, factory = self.hub()
        with capturedLogs() as events:
            protos = [self.connect(factory, f"10.9.{i // 200}.{i % 200}", 1000)
                      for i in range(MAX_HANDSHAKING_INBOUND + 1)]  # fmt: skip
        self.assertEqual(sum(p is not None for p in protos), MAX_HANDSHAKING_INBOUND)
        self.assertIsNone(protos[-1])
        self.assertTrue(any("refused" in e.get("verb", "") for e in events))
        self.assertEqual(len(hub.peers_info()), MAX_HANDSHAKING_INBOUND)
        s.clock.advance(6.0)
        self.assertEqual(hub.peers_info(), [])
        self.assertIsNotNone(self.connect(factory, "10.9.9.9", 999))

    def test_one_address_cannot_take_every_slot(self) -> None:
        """
        One address holds at most C{max_handshakes_per_source} handshakes; another address is
        still admitted while it floods.
        """
        s, hub, factory = self.hub(max_handshakes_per_source=8)
        protos = [self.connect(factory, "10.6.6.6", 1000 + i) for i in range(200)]
        self.assertEqual(sum(p is not None for p in protos), 8)
        self.assertIsNotNone(self.connect(factory, "10.1.1.1", 5))

    def test_full_table_gives_a_newcomer_a_slot(self) -> None:
        """
        When all the handshake slots are taken, a new address gets one: the address holding the
        most gives up its oldest.
        """
        s, hub, factory = self.hub(max_handshakes_per_source=8)
        for i in range(MAX_HANDSHAKING_INBOUND):
            self.assertIsNotNone(self.connect(factory, f"10.6.6.{i // 8}", 1000 + i))
        self.assertIsNotNone(self.connect(factory, "10.1.1.1", 5))
        pending = [e for e in hub.entries() if e.link is not None]
        self.assertEqual(len(pending), MAX_HANDSHAKING_INBOUND)
        self.assertIn("tcp://10.1.1.1:5", [e.uri for e in pending])

    def test_source_rate(self) -> None:
        """
        New connections from one address are limited to SOURCE_BURST at once, then SOURCE_RATE
        per second, even when each closes at once.
        """
        from axl.link.peers import SOURCE_BURST, SOURCE_RATE

        s, hub, factory = self.hub()
        admitted = 0
        for i in range(200):
            proto = self.connect(factory, "10.7.7.7", 1000 + i)
            if proto is not None:
                admitted += 1
                proto.transport.loseConnection()
                proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(admitted, SOURCE_BURST)
        s.clock.advance(1.0 / SOURCE_RATE)
        self.assertIsNotNone(self.connect(factory, "10.7.7.7", 2))

    def test_refusals_logged_in_aggregate(self) -> None:
        """10,000 refused connections cost a few log lines a minute, with the count."""
        s, hub, factory = self.hub()
        with capturedLogs() as events:
            for i in range(10_000):
                self.connect(factory, "10.6.6.6", i)
            s.clock.advance(60)
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertLessEqual(len(warnings), 3)
        self.assertEqual(hub.refusals.total, 10_000 - 8)
        self.assertIn(10_000 - 8 - 1, [e.get("n") for e in warnings])

    def test_inbound_churn_logged_in_aggregate(self) -> None:
        """
        Inbound links that come up and go down by the hundred (one per address and key) cost a
        bounded number of log lines a minute, with the counts, not two lines per link.
        """
        from axl.crypto import Identity
        from axl.link.meta import encode_meta

        s, hub, factory = self.hub()
        with capturedLogs() as events:
            for i in range(300):
                proto = self.connect(factory, f"10.4.{i // 250}.{i % 250}", 1)
                proto.dataReceived(encode_meta(Identity((1000 + i).to_bytes(32, "big"))))
                self.assertTrue(proto.core.is_up)
                proto.core.close("test")
            s.clock.advance(60)
        self.assertEqual((hub.inbound_up.total, hub.inbound_down.total), (300, 300))
        # per log: 8 at once, then up to 16 sources and one "others" line
        self.assertLessEqual(len(events), 2 * (8 + 16 + 1) + 300)  # + the links' own close lines
        lines = [e for e in events if e.get("verb") in ("accepted", "lost")]
        self.assertLessEqual(len(lines), 2 * (8 + 16 + 1))
        self.assertIn(300 - 16, [e.get("n") for e in lines])  # 16 sources named, the rest folded

    def test_per_key_cap(self) -> None:
        """At most C{max_inbound_per_key} inbound links with one key are up; more are closed."""
        s = Setup(tls=False)
        hub = s.manager(A, listen=["tcp://127.0.0.1:9001"], max_inbound_per_key=2)
        spokes = [s.manager(B, peers=["tcp://127.0.0.1:9001"]) for _ in range(3)]
        hub.startService()
        for spoke in spokes:
            spoke.startService()
        s.net.flush()
        self.assertEqual(len(hub.links()), 2)
        for spoke in spokes:
            spoke.stopService()
        hub.stopService()
        s.net.flush()

    def test_inbound_links_capped(self) -> None:
        """
        At most C{max_inbound_links} inbound links are up at once, whatever their addresses and
        keys: the next connection is refused at accept (counted in the aggregated refusal log),
        a handshake admitted earlier that finishes over the cap is closed, and once a link
        closes a new one is admitted again.
        """
        from axl.link.meta import encode_meta

        s, hub, factory = self.hub(max_inbound_links=3)
        early = self.connect(factory, "10.3.0.99", 1)  # admitted while there is room
        protos = [self.connect(factory, f"10.3.0.{i}", 1) for i in range(3)]
        for i, proto in enumerate(protos):
            proto.dataReceived(encode_meta(identity(10 + i)))
        self.assertEqual(len(hub.links()), 3)
        with capturedLogs() as events:
            self.assertIsNone(self.connect(factory, "10.3.0.50", 1))
            early.dataReceived(encode_meta(identity(20)))
        self.assertFalse(early.core.is_up)
        self.assertEqual(len(hub.links()), 3)
        self.assertEqual(hub.refusals.total, 2)
        self.assertTrue(any("max_inbound_links" in e.get("reason", "") for e in events))
        protos[0].core.close("test")
        again = self.connect(factory, "10.3.0.50", 2)
        again.dataReceived(encode_meta(identity(21)))
        self.assertTrue(again.core.is_up)
        self.assertEqual(len(hub.links()), 3)

    def test_inbound_cap_fair_share(self) -> None:
        """
        At the C{max_inbound_links} cap an address holding at least two more links than a
        newcomer's gives its newest one up once the newcomer's handshake is done, so one
        address cannot keep the others out; addresses holding one link each are not displaced.
        """
        from axl.link.meta import encode_meta

        s, hub, factory = self.hub(max_inbound_links=3)
        hog = [self.connect(factory, "10.5.0.1", 1 + i) for i in range(3)]
        for i, proto in enumerate(hog):
            proto.dataReceived(encode_meta(identity(30 + i)))
        self.assertEqual(len(hub.links()), 3)
        newcomer = self.connect(factory, "10.5.0.2", 1)
        self.assertIsNotNone(newcomer)
        newcomer.dataReceived(encode_meta(identity(40)))
        self.assertTrue(newcomer.core.is_up)
        self.assertEqual(len(hub.links()), 3)
        self.assertFalse(hog[2].core.is_up)  # the hog's newest gave way
        self.assertTrue(hog[0].core.is_up and hog[1].core.is_up)
        other = self.connect(factory, "10.5.0.3", 1)  # the hog holds 2, the newcomer 0: fair
        other.dataReceived(encode_meta(identity(41)))
        self.assertTrue(other.core.is_up)
        self.assertFalse(hog[1].core.is_up)
        self.assertIsNone(self.connect(factory, "10.5.0.4", 1))  # one link per address: refused

    def test_outbound_links_not_capped(self) -> None:
        """Links we dial (configured peers) do not count against C{max_inbound_links}."""
        s = Setup(tls=False)
        others = [s.manager(identity(30 + i), listen=[f"tcp://127.0.0.1:{9100 + i}"]) for i in range(3)]
        hub = s.manager(A, listen=["tcp://127.0.0.1:9001"], max_inbound_links=1,
                        peers=[f"tcp://127.0.0.1:{9100 + i}" for i in range(3)])  # fmt: skip
        spoke = s.manager(B, peers=["tcp://127.0.0.1:9001"])
        for m in others + [hub, spoke]:
            m.startService()
        s.net.flush()
        self.assertEqual(sorted(e.inbound for e in hub.entries() if e.up), [False, False, False, True])
        for m in others + [hub, spoke]:
            m.stopService()
        s.net.flush()

    def test_flooding_peer_banned(self) -> None:
        """
        A link dropped for flooding gets its address and key refused for BAN_MIN s (the key from
        another address too), doubling on the next offence.
        """
        from axl.errors import PeerFlooding
        from axl.link.peers import BAN_MIN

        class Flooded(RecordingHandler):
            def frame_received(self, link, frame_type, payload):  # type: ignore[no-untyped-def]
                raise PeerFlooding("too many")

        s, hub, factory = self.hub(handler=Flooded())
        proto = self.connect(factory, "10.5.5.5", 1)
        from axl.link.framing import encode_frame
        from axl.link.meta import encode_meta

        proto.dataReceived(encode_meta(B) + encode_frame(2, b"\x00"))
        self.assertTrue(proto.core.flooded)
        self.assertIsNone(self.connect(factory, "10.5.5.5", 2))
        other = self.connect(factory, "10.4.4.4", 3)
        other.dataReceived(encode_meta(B))
        self.assertFalse(other.core.is_up)
        s.clock.advance(BAN_MIN)
        again = self.connect(factory, "10.5.5.5", 4)
        self.assertIsNotNone(again)
        again.dataReceived(encode_meta(B) + encode_frame(2, b"\x00"))
        s.clock.advance(BAN_MIN)
        self.assertIsNone(self.connect(factory, "10.5.5.5", 5))  # the second ban is 2 x BAN_MIN
        s.clock.advance(BAN_MIN)
        self.assertIsNotNone(self.connect(factory, "10.5.5.5", 6))


class ServerTLSFactoryTests(SynchronousTestCase):
    def test_refusal_passes_through(self) -> None:
        """A refused connection (wrapped factory returns None) builds no TLS protocol."""
        from twisted.internet.address import IPv4Address
        from twisted.internet.protocol import Factory, Protocol

        from axl.link.endpoints import ServerTLSFactory

        creator = LinkTLS(A).server_creator()
        addr = IPv4Address("TCP", "10.0.0.1", 1)
        refusing = Factory()
        refusing.buildProtocol = lambda a: None  # type: ignore[method-assign]
        self.assertIsNone(ServerTLSFactory(creator, False, refusing).buildProtocol(addr))
        accepting = Factory.forProtocol(Protocol)
        proto = ServerTLSFactory(creator, False, accepting).buildProtocol(addr)
        self.assertIsInstance(proto.wrappedProtocol, Protocol)


class BackoffTests(SynchronousTestCase):
    def test_dial_failures_back_off(self) -> None:
        """Failed dials wait 2, 4, 8, ... s capped at max_backoff, each logged at warn."""
        s = Setup()
        spoke = s.manager(B, peers=[HUB], max_backoff=20.0)
        with capturedLogs() as events:
            spoke.startService()
            delays = []
            for _ in range(6):
                [entry] = spoke.entries()
                delays.append(entry.retry_delay)
                s.clock.advance(entry.retry_delay)
        self.assertEqual(delays, [2.0, 4.0, 8.0, 16.0, 20.0, 20.0])
        self.assertEqual(len(s.net.dials), 7)
        warns = [e for e in events if e.get("log_level") == LogLevel.warn and "redial" in e["log_format"]]
        self.assertEqual([w["n"] for w in warns], [1, 2, 3, 4, 5, 6, 7])
        self.assertIn("dial failed", warns[0]["error"])

    def test_uri_maxbackoff(self) -> None:
        """maxbackoff= on the URI caps that peer's waits."""
        s = Setup()
        spoke = s.manager(B, peers=[HUB + "?maxbackoff=5s"], max_backoff=60.0)
        spoke.startService()
        for _ in range(4):
            s.clock.advance(spoke.entries()[0].retry_delay)
        self.assertEqual(spoke.entries()[0].retry_delay, 5.0)

    def test_jitter_bounds(self) -> None:
        """With real randomness each wait lies in [(1 - JITTER) * base, base]."""
        s = Setup()
        spoke = s.manager(B, peers=[HUB], rng=random.Random(5), max_backoff=60.0)
        spoke.startService()
        for n in range(1, 9):
            delay = spoke.entries()[0].retry_delay
            base = min(60.0, 2.0**n)
            self.assertTrue((1 - JITTER) * base <= delay <= base, (n, delay))
            s.clock.advance(delay)

    def test_reconnect_after_listener_restart(self) -> None:
        """
        The hub goes away and comes back: the spoke's link goes down, redials with back-off,
        comes back up by itself, and the back-off state resets after the handshake.
        """
        s = Setup()
        hub, spoke = s.hub_and_spoke()
        hub.stopService()
        s.net.flush()
        [entry] = spoke.entries()
        self.assertFalse(entry.up)
        self.assertEqual(entry.retry_delay, 2.0)
        s.clock.advance(2.0)  # hub still down: dial refused
        self.assertEqual(entry.retry_delay, 4.0)
        hub.startService()
        s.clock.advance(4.0)
        s.net.flush()
        self.assertTrue(spoke.peers_info()[0]["up"])
        self.assertTrue(hub.peers_info()[0]["up"])
        self.assertEqual((entry.failures, entry.retry_delay), (0, None))

    def test_link_timeout_redials(self) -> None:
        """A link that dies by the 3 s peer timeout is redialled like any other failure."""
        s = Setup()
        hub, spoke = s.hub_and_spoke()
        [link] = spoke.links()
        # Make the hub deaf: its side drops every frame silently.
        [hub_link] = hub.links()
        hub_link.data_received = lambda data: None  # type: ignore[method-assign]
        link.send_frame(2, b"sigreq")
        s.net.flush()
        s.clock.advance(3.0)
        s.net.flush()
        [entry] = spoke.entries()
        self.assertIn("sent nothing for 3 s", entry.last_error)
        s.clock.advance(entry.retry_delay)
        s.net.flush()
        self.assertTrue(spoke.peers_info()[0]["up"])


class EndpointTests(SynchronousTestCase):
    """The production URI → endpoint mapping."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.tls = LinkTLS(A)

    def test_client_endpoints(self) -> None:
        """tcp:// dials with HostnameEndpoint, tls:// wraps it in TLS, unix:// uses UNIX."""
        tcp = client_endpoint(self.reactor, parse_peer_uri("tcp://[::1]:1"), self.tls)
        self.assertIsInstance(tcp, HostnameEndpoint)
        tls = client_endpoint(self.reactor, parse_peer_uri("tls://h.example:1"), self.tls)
        self.assertIsInstance(tls, _WrapperEndpoint)
        unix = client_endpoint(self.reactor, parse_peer_uri("unix:///tmp/x"), self.tls)
        self.assertIsInstance(unix, UNIXClientEndpoint)
        for ep in (tcp, tls, unix):
            self.assertTrue(verifyObject(IStreamClientEndpoint, ep))

    def test_server_endpoints(self) -> None:
        """Listen URIs map to TCP4/TCP6 endpoints, TLS-wrapped for tls://, and really listen."""
        v4 = server_endpoint(self.reactor, parse_listen_uri("tcp://127.0.0.1:9001"), self.tls)
        self.assertIsInstance(v4, TCP4ServerEndpoint)
        v6 = server_endpoint(self.reactor, parse_listen_uri("tcp://[::1]:9001"), self.tls)
        self.assertIsInstance(v6, TCP6ServerEndpoint)
        tls = server_endpoint(self.reactor, parse_listen_uri("tls://0.0.0.0:9003"), self.tls)
        self.assertIsInstance(tls, TLSServerEndpoint)
        self.assertTrue(verifyObject(IStreamServerEndpoint, tls))
        manager = PeerManager(A, self.reactor, listen=["tls://0.0.0.0:9003"], tls=self.tls)
        manager.startService()
        [(port, factory, _, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (9003, "0.0.0.0"))
        self.assertEqual(type(factory).__name__, "ServerTLSFactory")
        self.assertEqual(len(manager.listening_ports()), 1)

    def test_manager_dials_real_endpoint(self) -> None:
        """A manager with production endpoints dials the configured host and port."""
        manager = PeerManager(B, self.reactor, peers=["tls://127.0.0.1:9001"], tls=self.tls)
        manager.startService()
        self.reactor.advance(0)
        hosts = [(h, p) for h, p, *_ in self.reactor.tcpClients]
        self.assertIn(("127.0.0.1", 9001), hosts)


class NullHandlerTests(SynchronousTestCase):
    def test_null_handler_ignores_router_frames(self) -> None:
        """Until routing exists, frames of types 2-9 are accepted and ignored; the link stays up."""
        s = Setup()
        hub, spoke = s.hub_and_spoke()
        [link] = spoke.links()
        for frame_type in range(2, 10):
            link.send_frame(frame_type, b"\x00" * 8)
        s.net.flush()
        s.clock.advance(1.0)  # the hub's keepalive answers, clearing our read deadline
        s.net.flush()
        s.clock.advance(10.0)
        s.net.flush()
        self.assertEqual((len(spoke.links()), len(hub.links())), (1, 1))
        self.assertEqual(hub.links()[0].rx_bytes, 123 + 8 * 10)


class ServiceWiringTests(SynchronousTestCase):
    """axl.service puts a PeerManager on node.links from the config."""

    def test_node_links(self) -> None:
        """Peers, Listen, AllowedPublicKeys and peer_max_backoff_secs reach the manager."""
        from axl.config import config_from_dict
        from axl.service import make_node_service

        config = config_from_dict({
            "Peers": ["tls://192.0.2.1:9001"], "Listen": ["tcp://127.0.0.1:0"],
            "AllowedPublicKeys": [B.public_key.hex()], "peer_max_backoff_secs": 7,
        })  # fmt: skip
        top = make_node_service(config, MemoryReactorClock(), identity=A)
        links = top.node.links
        self.assertIsInstance(links, PeerManager)
        self.assertEqual((links.max_backoff, links.allowed_keys), (7.0, {B.public_key}))
        [peer] = top.node.topology()["peers"]
        self.assertEqual((peer["uri"], peer["up"], peer["public_key"]),
                         ("tls://192.0.2.1:9001", False, ""))  # fmt: skip

    def test_admission_keys_reach_the_manager(self) -> None:
        """The admission keys and link_write_buffer_bytes reach the manager and its links."""
        from axl.config import config_from_dict
        from axl.service import make_node_service

        config = config_from_dict({
            "Peers": ["tls://192.0.2.1:9001"], "max_handshakes_per_source": 3,
            "max_inbound_per_source": 4, "max_inbound_per_key": 5, "link_write_buffer_bytes": 4096,
            "max_inbound_links": 6, "link_write_budget_bytes": 70_000,
        })  # fmt: skip
        links = make_node_service(config, MemoryReactorClock(), identity=A).node.links
        self.assertEqual((links.max_handshakes_per_source, links.max_inbound_per_source,
                          links.max_inbound_per_key, links.max_inbound_links), (3, 4, 5, 6))  # fmt: skip
        entry = links.entries()[0]
        core = links._new_core(entry)
        self.assertEqual(core._write_buffer_max, 4096)
        self.assertIs(core._budget, links.write_budget)
        self.assertEqual(links.write_budget.limit, 70_000)

    def test_default_backoff_cap(self) -> None:
        """Without the key the cap is 60 s."""
        from axl.config import default_config

        self.assertEqual(default_config().peer_max_backoff_secs, 60.0)

    def test_bad_peer_uri_names_the_file(self) -> None:
        """A bad URI in Peers is a ConfigError naming the config source and the URI."""
        from axl.config import config_from_dict
        from axl.service import make_node_service

        config = config_from_dict({"Peers": ["tls://h:1?password=" + "x" * 65]}, source="c.json")
        e = self.assertRaises(ConfigError, make_node_service, config, MemoryReactorClock(), A)
        self.assertIn("c.json", str(e))
        self.assertIn("password=", str(e))
