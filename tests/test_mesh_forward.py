# -*- test-case-name: tests.test_mesh_forward -*-
"""
Tests for L{axl.mesh.forward} (greedy forwarding, spec/yggdrasil-wire.md section 3.8) and for the
shape of C{axl.mesh}: its modules import each other without a cycle (the path finder and the
router share the forwarder instead of importing each other).
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import axl.mesh
from axl.mesh.forward import Forwarder
from axl.mesh.sim import SimNetwork


def mesh_imports() -> dict[str, set[str]]:
    """Module name -> the C{axl.mesh} modules it imports (also under TYPE_CHECKING)."""
    root = Path(axl.mesh.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        name = path.stem
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("axl.mesh."):
                found.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("axl.mesh."))
        graph[name] = found - {name}
    return graph


class ImportTests(SynchronousTestCase):
    def test_no_cycle(self) -> None:
        """No module of axl.mesh reaches itself through its imports."""
        graph = mesh_imports()
        for start in graph:
            seen: set[str] = set()
            todo = list(graph[start])
            while todo:
                name = todo.pop()
                self.assertNotEqual(name, start, f"import cycle through axl.mesh.{start}")
                if name not in seen:
                    seen.add(name)
                    todo.extend(graph.get(name, ()))

    def test_paths_and_router_apart(self) -> None:
        """The path finder does not import the router; both import the forwarder."""
        graph = mesh_imports()
        self.assertNotIn("router", graph["paths"])
        self.assertIn("forward", graph["paths"])
        self.assertIn("forward", graph["router"])


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
