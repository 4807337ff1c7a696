# -*- test-case-name: tests.test_mesh_sim -*-
"""
Whole-mesh simulations with L{axl.mesh.sim}: convergence to the lowest key, delivery between
every ordered pair, re-convergence after the root leaves, a line of 10 nodes, latency and drops.
"""

from __future__ import annotations

import itertools

from twisted.trial.unittest import SynchronousTestCase

from axl.mesh.sim import SimNetwork, SimNode
from axl.mesh.wire import FRAME_ANNOUNCE, FRAME_BLOOM, FRAME_TRAFFIC


def settle(net: SimNetwork, limit: float = 120.0) -> float:
    """Advance until the tree has converged and a whole tick passes without announce or bloom
    frames; return the simulated seconds that took."""
    start = net.clock.seconds()
    while not net.converged():
        net.advance(0.25)
        if net.clock.seconds() - start > limit:
            raise AssertionError("the tree did not converge")
    while True:
        before = net.frames[FRAME_ANNOUNCE] + net.frames[FRAME_BLOOM]
        net.advance(1)
        if net.frames[FRAME_ANNOUNCE] + net.frames[FRAME_BLOOM] == before:
            return net.clock.seconds() - start
        if net.clock.seconds() - start > limit:
            raise AssertionError("gossip did not settle")


def deliver_all(net: SimNetwork, nodes: list[SimNode]) -> list[tuple[SimNode, SimNode]]:
    """Every ordered pair sends one packet; return the pairs whose packet did not arrive (with
    link latency, after letting 3 simulated seconds pass)."""
    sent = []
    for a in nodes:
        for b in nodes:
            if a is not b:
                payload = a.name.encode() + b">" + b.name.encode() + b"@" + str(len(sent)).encode()
                net.send(a, b, payload)
                sent.append((a, b, payload))
    if net.latency:
        net.advance(3)
    return [(a, b) for a, b, payload in sent if (a.public_key, payload) not in b.received]


class FiftyNodeTests(SynchronousTestCase):
    """50 routers in a random connected graph (49 tree links plus 25 extra)."""

    def setUp(self) -> None:
        self.net = SimNetwork(seed=1)
        self.nodes = self.net.random_graph(50, 25)

    def tearDown(self) -> None:
        self.net.stop()
        self.assertEqual(self.net.clock.getDelayedCalls(), [])

    def test_converge_deliver_and_survive_root_loss(self) -> None:
        """All 50 agree on the lowest key as root; every ordered pair delivers (first packets
        through lookups, second ones along known paths with bounded stretch); after the root
        leaves, the other 49 re-converge on the next lowest key and deliver again."""
        net = self.net
        took = settle(net)
        self.assertLess(took, 30)
        self.assertEqual(net.roots(), {net.lowest_key()})
        for node in self.nodes:
            tree_keys = {bytes.fromhex(e["public_key"]) for e in node.router.tree_info()}  # type: ignore[arg-type]
            self.assertIn(net.lowest_key(), tree_keys)
            self.assertIn(node.public_key, tree_keys)
        self.assertEqual(deliver_all(net, self.nodes), [])
        stretch = []
        for a in self.nodes[:10]:
            for b in self.nodes:
                if a is not b:
                    stretch.append(net.send(a, b, b"again") / net.shortest_hops(a, b))
        self.assertGreaterEqual(min(stretch), 1.0)
        self.assertLess(sum(stretch) / len(stretch), 2.0)

        root = next(n for n in self.nodes if n.public_key == net.lowest_key())
        net.remove_node(root)
        self.nodes.remove(root)
        settle(net)
        self.assertEqual(net.roots(), {min(n.public_key for n in self.nodes)})
        self.assertEqual(deliver_all(net, self.nodes), [])
        self.assertEqual(net.errors, [])


class LineTests(SynchronousTestCase):
    """A line of 10 routers."""

    def test_line_of_ten(self) -> None:
        """Packets cross all 9 hops in both directions, and the end nodes' coords say so."""
        net = SimNetwork(seed=2)
        nodes = [net.add_node() for _ in range(10)]
        for a, b in itertools.pairwise(nodes):
            net.connect(a, b)
        settle(net)
        first, last = nodes[0], nodes[-1]
        net.send(first, last, b"hello")
        self.assertEqual(last.received[-1], (first.public_key, b"hello"))
        self.assertEqual(net.send(first, last, b"again"), 9)
        self.assertEqual(net.send(last, first, b"back"), 9)
        self.assertEqual(first.received[-1], (last.public_key, b"back"))
        depths = sorted(len(n.router.coords()) for n in nodes)
        self.assertEqual(depths[0], 0)
        self.assertEqual(net.errors, [])
        net.stop()
        self.assertEqual(net.clock.getDelayedCalls(), [])


class LatencyAndDropTests(SynchronousTestCase):
    """Frames that take time, and frames that get lost."""

    def test_latency(self) -> None:
        """With 20 ms links the mesh still converges and delivers; link costs follow the RTT."""
        net = SimNetwork(seed=4, latency=0.02)
        nodes = net.random_graph(12, 6)
        settle(net)
        self.assertEqual(deliver_all(net, nodes), [])
        net.advance(5)
        costs = {peer.cost for n in nodes for peer in n.router.peers.links()}
        self.assertTrue(all(20 <= c <= 80 for c in costs), costs)
        net.stop()
        self.assertEqual(net.clock.getDelayedCalls(), [])

    def test_dropped_traffic(self) -> None:
        """Dropped Traffic frames are lost; once the link carries them again packets arrive."""
        net = SimNetwork(seed=5)
        a, b, c = (net.add_node() for _ in range(3))
        net.connect(a, b)
        net.connect(b, c)
        settle(net)
        net.send(a, c, b"warm-up")
        net.drop = lambda link, frame_type, payload: frame_type == FRAME_TRAFFIC
        net.send(a, c, b"lost")
        self.assertNotEqual(c.received[-1][1], b"lost")
        net.drop = None
        net.send(a, c, b"found")
        self.assertEqual(c.received[-1], (a.public_key, b"found"))
        net.stop()

    def test_link_loss_reroutes(self) -> None:
        """In a ring, cutting a link on the path re-routes the next packets the other way."""
        net = SimNetwork(seed=6)
        nodes = [net.add_node() for _ in range(6)]
        for i in range(6):
            net.connect(nodes[i], nodes[(i + 1) % 6])
        settle(net)
        src, dst = nodes[0], nodes[3]
        net.send(src, dst, b"one")
        self.assertEqual(dst.received[-1][1], b"one")
        self.assertIn(dst.public_key, src.router.pathfinder.paths)
        net.disconnect(nodes[0], nodes[1])
        settle(net)
        net.advance(2)
        net.send(src, dst, b"two")
        net.send(src, dst, b"three")
        self.assertEqual(dst.received[-1], (src.public_key, b"three"))
        self.assertEqual(net.errors, [])
        net.stop()
        self.assertEqual(net.clock.getDelayedCalls(), [])


class SimClockTests(SynchronousTestCase):
    """The heap clock behaves like C{task.Clock}, calls running at their own times."""

    def test_order_cancel_reset(self) -> None:
        """Calls run in time order at their own time; cancelled ones never; reset ones when
        moved, earlier or later; nothing is left afterwards."""
        from axl.mesh.sim import SimClock

        clock = SimClock()
        ran: list[tuple[str, float]] = []

        def log(name: str) -> None:
            ran.append((name, clock.seconds()))

        clock.callLater(3, log, "c")
        clock.callLater(1, log, "a")
        gone = clock.callLater(2, log, "gone")
        early = clock.callLater(10, log, "early")
        late = clock.callLater(0.5, log, "late")
        gone.cancel()
        early.reset(2.5)
        late.reset(4)
        self.assertEqual(len(clock.getDelayedCalls()), 4)
        clock.advance(5)
        self.assertEqual(ran, [("a", 1), ("early", 2.5), ("c", 3), ("late", 4)])
        self.assertEqual(clock.seconds(), 5)
        self.assertEqual(clock.getDelayedCalls(), [])
