# -*- test-case-name: tests.test_mesh_setup -*-
"""
First contact without retransmissions (issue 19, item 1; spec/yggdrasil-wire.md sections 3.6-3.7
and 4.5): a lookup sent before the bloom filters settled is retried by the path finder, so the
first packet of a fresh pair arrives as soon as the filters allow, with nobody re-sending it;
packets waiting for a path are kept in order and bounded. Everything runs in the simulated mesh
on a clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity
from axl.ipv6.packet import build_packet
from axl.ipv6.stack import Overlay, build_overlay
from axl.mesh.paths import (
    LOOKUP_FAST_RETRIES,
    LOOKUP_RETRY_S,
    MAX_HELD_BYTES,
    MAX_HELD_PER_DEST,
    RECENT_KEPT,
    RECENT_S,
    REVERSE_TTL_S,
)
from axl.mesh.bloom import EMPTY_BLOOM
from axl.mesh.sim import SimNetwork, SimNode
from axl.crypto.address import xform
from axl.mesh.wire import FRAME_BLOOM, FRAME_BROKEN, FRAME_LOOKUP, FRAME_TRAFFIC, PathLookup
from axl.session.proto import node_info_json

UDP = 17
LATENCY = 0.001  # one way, per link
T0 = 1.7e9


class Mesh:
    """A chain of routers on a clock, each with its session and IPv6 layers."""

    def __init__(self, test: SynchronousTestCase, n: int, seed: int = 1) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.net = SimNetwork(self.clock, seed=seed, latency=LATENCY)
        test.addCleanup(self.net.stop)
        self.nodes: list[SimNode] = []
        self.overlays: list[Overlay] = []
        self.got: list[list[tuple[float, bytes, bytes]]] = []
        for _ in range(n):
            node = self.net.add_node()
            overlay = build_overlay(
                node.identity, node.router, self.clock, node_info_json({}), list, list
            )
            test.addCleanup(overlay.stop)
            node.on_traffic = overlay.traffic_received
            node.on_path_notify = overlay.path_notify
            got: list[tuple[float, bytes, bytes]] = []
            overlay.ipv6.register_protocol(
                UDP, lambda k, p, got=got: got.append((self.clock.seconds(), k, p))
            )
            self.nodes.append(node)
            self.overlays.append(overlay)
            self.got.append(got)
        for a, b in zip(self.nodes, self.nodes[1:]):
            self.net.connect(a, b)

    def run_until(self, check: Any, limit: float, step: float = 0.001) -> float:
        """Advance in C{step}s until C{check()}; the time it took (fails after C{limit})."""
        start = self.clock.seconds()
        while not check():
            if self.clock.seconds() - start > limit:
                raise AssertionError(f"not within {limit} s")
            self.net.advance(step)
        return self.clock.seconds() - start

    def packet(self, i: int, j: int, data: bytes) -> bytes:
        return build_packet(self.overlays[i].ipv6.address, self.overlays[j].ipv6.address, UDP, data)


class FirstContactTests(SynchronousTestCase):
    """The first packet between two nodes that never talked."""

    def test_sent_before_filters_settle(self) -> None:
        """
        X sends one packet to Y on a line X - L - Y the moment the links are up (no tree, no
        filters yet) and never again: it arrives within 0.1 s of the tree converging (its
        first lookups found no target; the path finder retried as the filters filled).
        """
        mesh = Mesh(self, 3)
        net = mesh.net
        net.advance(LATENCY * 3)
        x, _, y = mesh.nodes
        packet = mesh.packet(0, 2, b"first")
        mesh.overlays[0].ipv6.send_ipv6(packet)
        converged = mesh.run_until(net.converged, 5)
        arrived = mesh.run_until(lambda: mesh.got[2], 0.1)
        self.assertEqual([(k, p) for _, k, p in mesh.got[2]], [(x.public_key, packet)])
        self.assertLess(arrived, 0.1)
        self.assertGreater(converged, 0)

    def test_right_after_convergence(self) -> None:
        """Sent right after the tree converged, the first packet arrives within 50 ms."""
        mesh = Mesh(self, 3, seed=2)
        mesh.run_until(mesh.net.converged, 5)
        mesh.overlays[0].ipv6.send_ipv6(mesh.packet(0, 2, b"first"))
        self.assertLess(mesh.run_until(lambda: mesh.got[2], 0.05), 0.05)

    def test_chain_both_ways_at_once(self) -> None:
        """
        On a 6-node chain both ends send their first packet at the same moment right after
        the tree converged: both arrive within 0.5 s (several seeds, so several key orders).
        """
        for seed in range(4):
            mesh = Mesh(self, 6, seed=seed)
            mesh.run_until(mesh.net.converged, 10)
            mesh.overlays[0].ipv6.send_ipv6(mesh.packet(0, 5, b"right"))
            mesh.overlays[5].ipv6.send_ipv6(mesh.packet(5, 0, b"left"))
            took = mesh.run_until(lambda: mesh.got[0] and mesh.got[5], 0.5)
            self.assertLess(took, 0.5, f"seed {seed}")

    def test_lost_lookup_retried(self) -> None:
        """A lookup lost on the way is sent again after LOOKUP_RETRY_S, nothing re-sent above."""
        mesh = Mesh(self, 3, seed=3)
        mesh.run_until(mesh.net.converged, 5)
        mesh.net.advance(2)  # filters settled
        lost: list[int] = []

        def drop_first_lookup(link: Any, frame_type: int, payload: bytes) -> bool:
            if frame_type == FRAME_LOOKUP and not lost:
                lost.append(frame_type)
                return True
            return False

        mesh.net.drop = drop_first_lookup
        mesh.overlays[0].ipv6.send_ipv6(mesh.packet(0, 2, b"first"))
        took = mesh.run_until(lambda: mesh.got[2], LOOKUP_RETRY_S + 0.05)
        self.assertEqual(lost, [FRAME_LOOKUP])
        self.assertGreater(took, LOOKUP_RETRY_S)

    def test_answered_lookup_not_retried(self) -> None:
        """Once the notify came back, ticks send no more lookups for that key."""
        mesh = Mesh(self, 3, seed=4)
        mesh.run_until(mesh.net.converged, 5)
        mesh.overlays[0].ipv6.send_ipv6(mesh.packet(0, 2, b"first"))
        mesh.run_until(lambda: mesh.got[2], 1)
        before = mesh.net.frames[FRAME_LOOKUP]
        mesh.net.advance(5)
        self.assertEqual(mesh.net.frames[FRAME_LOOKUP], before)

    def test_answer_along_the_senders_coords(self) -> None:
        """
        Y can never find X (every lookup Y sends is lost), yet X's first packet arrives: Y's
        session ack, held for X, goes along the coordinates X's init came from.
        """
        mesh = Mesh(self, 3, seed=6)
        mesh.run_until(mesh.net.converged, 5)
        mesh.net.advance(2)
        x, _, y = mesh.nodes

        def lose_ys_lookups(link: Any, frame_type: int, payload: bytes) -> bool:
            return frame_type == FRAME_LOOKUP and PathLookup.decode(payload).source == y.public_key

        mesh.net.drop = lose_ys_lookups
        mesh.overlays[0].ipv6.send_ipv6(mesh.packet(0, 2, b"first"))
        mesh.run_until(lambda: mesh.got[2], 0.05)
        self.assertNotIn(x.public_key, y.router.pathfinder.paths)  # Y's lookups all failed
        mesh.overlays[2].ipv6.send_ipv6(mesh.packet(2, 0, b"reply"))
        mesh.run_until(lambda: mesh.got[0], 0.05)

    def test_held_for_an_address_sent_when_its_key_talks(self) -> None:
        """
        X's lookups for Y never get through (as when the filters between them are still
        settling), but Y finds X and talks first: X's packet to Y's address, kept while its
        key was unknown, goes out as soon as Y's first packet teaches X the key, and arrives
        (along Y's coordinates); nothing re-sends it.
        """
        mesh = Mesh(self, 3, seed=9)
        mesh.run_until(mesh.net.converged, 5)
        mesh.net.advance(2)
        x = mesh.nodes[0]

        def lose_xs_lookups(link: Any, frame_type: int, payload: bytes) -> bool:
            return frame_type == FRAME_LOOKUP and PathLookup.decode(payload).source == x.public_key

        mesh.net.drop = lose_xs_lookups
        mine = mesh.packet(0, 2, b"from x")
        mesh.overlays[0].ipv6.send_ipv6(mine)
        mesh.net.advance(0.05)
        self.assertEqual(mesh.got[2], [])
        mesh.overlays[2].ipv6.send_ipv6(mesh.packet(2, 0, b"from y"))
        mesh.run_until(lambda: mesh.got[0], 0.05)
        mesh.run_until(lambda: mesh.got[2], 0.05)
        self.assertEqual([p for _, _, p in mesh.got[2]], [mine])

    def test_own_lookup_to_parent_before_its_filter(self) -> None:
        """
        The filters a source's parent sends it never arrive (as when a Go parent refreshes
        them a tick late): its own lookup still goes to the parent, whose filters hold the
        key, and the first packet arrives at once. Lookups it forwards for others do not.
        """
        mesh = Mesh(self, 3, seed=10)
        mesh.run_until(mesh.net.converged, 5)
        middle = mesh.nodes[1].public_key
        ends = [n for n in (mesh.nodes[0], mesh.nodes[2]) if n.router.parent() == middle]
        source = ends[0]
        dest = mesh.nodes[2] if source is mesh.nodes[0] else mesh.nodes[0]

        def lose_blooms_to_source(link: Any, frame_type: int, payload: bytes) -> bool:
            return frame_type == FRAME_BLOOM and link.other.local is source

        mesh.net.drop = lose_blooms_to_source
        for state in source.router.blooms._state.values():
            state.recv = EMPTY_BLOOM  # (what it held from L so far is forgotten)
        mesh.net.advance(2)
        pf = source.router.pathfinder
        targets = source.router.blooms.target_keys(dest.public_key, source.public_key)
        self.assertEqual(targets, frozenset())
        i, j = mesh.nodes.index(source), mesh.nodes.index(dest)
        packet = mesh.packet(i, j, b"first")
        mesh.overlays[i].ipv6.send_ipv6(packet)
        mesh.run_until(lambda: mesh.got[j], 0.02)
        self.assertEqual([(k, p) for _, k, p in mesh.got[j]], [(source.public_key, packet)])
        # a lookup that is not our own is not sent to the parent when no filter holds its key
        lookups = mesh.net.frames[FRAME_LOOKUP]
        other = Identity(bytes([5]) * 32).public_key
        pf._handle_lookup(other, PathLookup(other, Identity(bytes([6]) * 32).public_key, ()))
        self.assertEqual(mesh.net.frames[FRAME_LOOKUP], lookups)

    def test_forged_coords_only_cost_copies(self) -> None:
        """
        Traffic claiming to come from a key at wrong coordinates misdirects only copies: the
        packets held for that key stay held (for the signed path), and the coordinates are
        forgotten after REVERSE_TTL_S.
        """
        mesh = Mesh(self, 3, seed=7)
        mesh.run_until(mesh.net.converged, 5)
        y = mesh.nodes[2]
        pf = y.router.pathfinder
        far = Identity(bytes([3]) * 32).public_key
        pf.traffic_from(far, (9, 9, 9))  # forged: leads nowhere
        y.router.send(far, b"for far")
        self.assertEqual(pf.held_packets, 1)
        self.assertTrue(pf.rumors[xform(far)].waiting)
        broken = mesh.net.frames[FRAME_BROKEN]
        mesh.net.advance(0.01)
        self.assertGreater(mesh.net.frames[FRAME_BROKEN], broken)  # the copy went astray
        mesh.net.advance(REVERSE_TTL_S)
        sent = mesh.net.frames[FRAME_TRAFFIC]
        y.router.send(far, b"again")
        self.assertEqual(mesh.net.frames[FRAME_TRAFFIC], sent)  # no copy any more
        self.assertEqual(pf.held_packets, 2)


class HeldPacketTests(SynchronousTestCase):
    """Packets waiting in the path finder for a lookup."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.net = SimNetwork(self.clock, seed=5)
        self.addCleanup(self.net.stop)
        self.x, self.y = self.net.add_node(), self.net.add_node()
        self.far = Identity(bytes([9]) * 32).public_key

    def test_in_order_after_notify(self) -> None:
        """Packets sent before the path is known arrive in order, all of them."""
        self.net.connect(self.x, self.y)
        for i in range(5):
            self.net.send(self.x, self.y, b"%d" % i)
        self.net.advance(3)
        self.assertEqual([d for _, d in self.y.received], [b"%d" % i for i in range(5)])
        self.assertEqual(self.x.router.pathfinder.held_packets, 0)

    def test_bound_per_destination(self) -> None:
        """Beyond MAX_HELD_PER_DEST the oldest give way, counted."""
        pf = self.x.router.pathfinder
        for i in range(MAX_HELD_PER_DEST + 3):
            self.x.router.send(self.far, b"%d" % i)
        self.assertEqual(pf.held_packets, MAX_HELD_PER_DEST)
        self.assertEqual(pf.held_dropped, 3)

    def test_bound_total(self) -> None:
        """Beyond MAX_HELD_BYTES for all destinations, new packets are refused, counted."""
        pf = self.x.router.pathfinder
        data = bytes(self.x.router.mtu)
        n = MAX_HELD_BYTES // len(data)
        for i in range(n + 1):
            self.x.router.send(Identity(i.to_bytes(32, "big")).public_key, data)
        self.assertEqual(pf.held_packets, n)
        self.assertEqual(pf.held_dropped, 1)
        self.assertLessEqual(pf.held_bytes, MAX_HELD_BYTES)

    def test_retry_schedule(self) -> None:
        """
        An unanswered lookup is sent again every LOOKUP_RETRY_S for LOOKUP_FAST_RETRIES
        retries, then at most once a second.
        """
        pf = self.x.router.pathfinder
        self.x.router.send(self.far, b"x")
        self.assertEqual(pf.lookups_sent, 1)
        self.net.advance(LOOKUP_RETRY_S * LOOKUP_FAST_RETRIES + 0.01)
        self.assertEqual(pf.lookups_sent, 1 + LOOKUP_FAST_RETRIES)
        self.net.advance(10)
        self.assertGreaterEqual(pf.lookups_sent, 1 + LOOKUP_FAST_RETRIES + 9)
        self.assertLessEqual(pf.lookups_sent, 1 + LOOKUP_FAST_RETRIES + 11)

    def test_expired_held_counted(self) -> None:
        """Held packets whose lookup expires unanswered are dropped and counted."""
        pf = self.x.router.pathfinder
        self.x.router.send(self.far, b"x")
        self.net.advance(61)
        self.assertEqual((pf.held_packets, pf.held_dropped), (0, 1))


class _StaleOnce:
    """Wraps a L{Forwarder}: the next Traffic frame finds no next hop (a stale tree view)."""

    def __init__(self, forwarder: Any) -> None:
        self._forwarder = forwarder
        self.stale = 1

    def hop(self, cache_key: object, path: Any) -> Any:
        if self.stale:
            self.stale -= 1
            return 0, None
        return self._forwarder.hop(cache_key, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._forwarder, name)


class BrokenPathTests(SynchronousTestCase):
    """A packet lost on a path that broke is sent again once the path is found again."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.net = SimNetwork(self.clock, seed=8, latency=LATENCY)
        self.addCleanup(self.net.stop)
        self.x, self.l, self.y = (self.net.add_node() for _ in range(3))
        self.net.connect(self.x, self.l)
        self.net.connect(self.l, self.y)
        while not self.net.converged():
            self.net.advance(0.01)
        self.net.advance(2)  # filters settled
        self.net.send(self.x, self.y, b"one")
        self.net.advance(0.05)
        self.assertEqual([d for _, d in self.y.received], [b"one"])
        self.net.advance(RECENT_S)  # "one" is too old to be sent again after a broken path

    def test_resent_after_a_broken_path_same_coords(self) -> None:
        """
        L's view is stale for one frame: X's second packet is dropped there and X is told the
        path broke (within a second of finding it, so a one-shot lookup would be throttled,
        and Y's answer carries the same sequence number and coordinates). X looks Y up again
        at once and re-sends the lost packet when the answer comes; nothing above re-sends.
        """
        stale = self.l.router.forwarder = _StaleOnce(self.l.router.forwarder)
        before = self.net.frames[FRAME_BROKEN]
        self.net.send(self.x, self.y, b"two")
        self.net.advance(0.05)
        self.assertEqual(stale.stale, 0)
        self.assertEqual(self.net.frames[FRAME_BROKEN], before + 1)
        self.assertEqual([d for _, d in self.y.received], [b"one", b"two"])
        entry = self.x.router.pathfinder.paths[self.y.public_key]
        self.assertFalse(entry.broken)
        lookups = self.net.frames[FRAME_LOOKUP]
        self.net.advance(5)
        self.assertEqual(self.net.frames[FRAME_LOOKUP], lookups)  # answered: no more retries

    def test_sent_while_broken_resent_in_order(self) -> None:
        """
        Packets sent after X learnt that the path broke (and before the new answer) are lost
        at L too: all of them are sent again, in order, after the one lost first (Go keeps
        only the last packet sent, so the first is lost).
        """
        stale = self.l.router.forwarder = _StaleOnce(self.l.router.forwarder)
        stale.stale = 3
        self.net.send(self.x, self.y, b"two")
        self.net.advance(LATENCY * 2.5)  # the broken notice is back, the lookup on its way
        self.assertTrue(self.x.router.pathfinder.paths[self.y.public_key].broken)
        self.net.send(self.x, self.y, b"three")
        self.net.send(self.x, self.y, b"four")
        self.net.advance(0.05)
        self.assertEqual(stale.stale, 0)
        self.assertEqual(
            [d for _, d in self.y.received], [b"one", b"two", b"three", b"four"]
        )
        self.assertEqual(self.x.router.pathfinder.held_packets, 0)

    def test_recent_packets_resent_after_broken(self) -> None:
        """
        Two packets go out along the path before the notice that it broke comes back (both
        dropped at L): both are sent again, in order, after the new answer (Go sends only the
        last, and the receiver's nonce order then makes the first one lost for good).
        """
        stale = self.l.router.forwarder = _StaleOnce(self.l.router.forwarder)
        stale.stale = 2
        self.net.send(self.x, self.y, b"syn")
        self.net.send(self.x, self.y, b"syn-ack")
        self.net.advance(0.05)
        self.assertEqual(stale.stale, 0)
        self.assertEqual([d for _, d in self.y.received], [b"one", b"syn", b"syn-ack"])

    def test_recent_bounded(self) -> None:
        """At most RECENT_KEPT packets per path are kept to be sent again."""
        entry = self.x.router.pathfinder.paths[self.y.public_key]
        for i in range(RECENT_KEPT + 5):
            self.net.send(self.x, self.y, b"%d" % i)
        self.assertEqual(len(entry.recent), RECENT_KEPT)
        self.assertEqual(entry.recent[-1][1], b"%d" % (RECENT_KEPT + 4))
        self.net.send(self.x, self.y, bytes(self.x.router.mtu))
        self.assertEqual(len(entry.recent), 1)  # the byte bound; the last one always stays

    def test_broken_lookup_retried_until_answered(self) -> None:
        """
        After a broken path, X's lookups are lost for a while (the filters are changing): X
        keeps retrying them and the packet arrives after the first lookup that gets through.
        """
        self.l.router.forwarder = _StaleOnce(self.l.router.forwarder)
        lost: list[int] = []

        def lose_lookups(link: Any, frame_type: int, payload: bytes) -> bool:
            if frame_type == FRAME_LOOKUP and len(lost) < 2:
                lost.append(frame_type)
                return True
            return False

        self.net.drop = lose_lookups
        self.net.send(self.x, self.y, b"two")
        self.net.advance(1.0)
        self.assertEqual(len(lost), 2)
        self.assertEqual([d for _, d in self.y.received], [b"one", b"two"])
