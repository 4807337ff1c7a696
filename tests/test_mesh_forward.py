# -*- test-case-name: tests.test_mesh_forward -*-
"""
Tests for L{axl.mesh.forward} (greedy forwarding, spec/yggdrasil-wire.md section 3.8) and for the
shape of C{axl.mesh}: the path finder and the router share the forwarder instead of importing
each other.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from axl.mesh.forward import Forwarder
from axl.mesh.sim import SimNetwork
from tests.test_import_order import import_graph


class ImportTests(SynchronousTestCase):
    """
    The path finder and the router share the forwarder instead of importing each other (the
    import graph of all of C{axl/}, cycles included, is checked by L{tests.test_import_order}).
    """

    def test_paths_and_router_apart(self) -> None:
        """The path finder does not import the router; both import the forwarder."""
        graph = import_graph()
        self.assertNotIn("axl.mesh.router", graph["axl.mesh.paths"])
        self.assertIn("axl.mesh.forward", graph["axl.mesh.paths"])
        self.assertIn("axl.mesh.forward", graph["axl.mesh.router"])


class ForwarderTests(SynchronousTestCase):
    """Next hops on a converged line a - b - c."""

    def setUp(self) -> None:
        self.net = SimNetwork(seed=7)
        self.addCleanup(self.net.stop)
        self.a, self.b, self.c = (self.net.add_node() for _ in range(3))
        self.net.connect(self.a, self.b)
        self.net.connect(self.b, self.c)
        self.net.advance(10)
        self.assertTrue(self.net.converged())

    def test_towards_and_watermark(self) -> None:
        """a's hop to c's coords is b, with a's distance as the new watermark; not past it."""
        fwd: Forwarder = self.a.router.forwarder
        coords = self.c.router.tree.coords(self.c.public_key)
        dist, peer = fwd.compute_hop(coords)
        self.assertIsNotNone(peer)
        assert peer is not None
        self.assertEqual(peer.key, self.b.public_key)
        self.assertEqual(fwd.next_hop(coords, 2**64 - 1), (peer, dist))
        self.assertEqual(fwd.next_hop(coords, dist), (None, dist))

    def test_at_destination(self) -> None:
        """No peer is closer to our own coords than we are."""
        fwd = self.c.router.forwarder
        coords = self.c.router.tree.coords(self.c.public_key)
        self.assertEqual(fwd.next_hop(coords, 2**64 - 1), (None, 0))

    def test_cache_cleared(self) -> None:
        """A cached hop is served until clear(); then it is computed again."""
        fwd = self.a.router.forwarder
        coords = self.c.router.tree.coords(self.c.public_key)
        fwd.hop(b"raw", coords)
        fwd._hops[b"raw"] = (99, None)  # a stale entry
        self.assertEqual(fwd.hop(b"raw", coords), (99, None))
        fwd.clear()
        self.assertNotEqual(fwd.hop(b"raw", coords), (99, None))
