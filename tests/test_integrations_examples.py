"""
Tests for the logic of the example programs in examples/ (loaded from their files), run over an
in-memory "mesh" of fake bridge clients: convergecast over a small tree, gossip over a line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from axl.client import ReceivedMessage

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"axl_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeMesh:
    """Nodes with /recv queues; send() appends to the destination's queue."""

    def __init__(self, tree: dict[str, str], links: list[tuple[str, str]]) -> None:
        self.tree, self.links = tree, links
        self.queues: dict[str, list[ReceivedMessage]] = {k: [] for k in tree}

    def node(self, key: str) -> "FakeNode":
        return FakeNode(self, key)


class FakeNode:
    def __init__(self, mesh: FakeMesh, key: str) -> None:
        self.mesh, self.key = mesh, key

    def topology(self) -> dict[str, Any]:
        peers = [
            {"public_key": b if a == self.key else a, "up": True}
            for a, b in self.mesh.links
            if self.key in (a, b)
        ]
        tree = [{"public_key": k, "parent": p} for k, p in self.mesh.tree.items()]
        return {"our_public_key": self.key, "peers": peers, "tree": tree}

    def our_key(self) -> str:
        return self.key

    def send(self, peer: str, data: bytes) -> int:
        self.mesh.queues[peer].append(ReceivedMessage(self.key, data))
        return len(data)

    def recv(self) -> ReceivedMessage | None:
        queue = self.mesh.queues[self.key]
        return queue.pop(0) if queue else None


R, M, L1, L2 = "00" * 32, "11" * 32, "22" * 32, "33" * 32


class ConvergecastTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cc = load("convergecast")

    def test_tree_position(self) -> None:
        """The root is the node that is its own parent (or has an empty one, as AXL's sample assumed)."""
        mesh = FakeMesh({R: R, M: R, L1: M, L2: M}, [])
        self.assertEqual(self.cc.tree_position(mesh.node(R).topology()), (R, None, [M]))
        self.assertEqual(self.cc.tree_position(mesh.node(M).topology()), (M, R, [L1, L2]))
        self.assertEqual(self.cc.tree_position(mesh.node(L1).topology()), (L1, M, []))
        axl_style = {"our_public_key": R, "tree": [{"public_key": R, "parent": ""}]}
        self.assertEqual(self.cc.tree_position(axl_style), (R, None, []))

    def test_sum(self) -> None:
        """Leaves, then the intermediate node, then the root: the root's total covers every node."""
        mesh = FakeMesh({R: R, M: R, L1: M, L2: M}, [])
        mesh.queues[M].append(ReceivedMessage(L1, b"not json"))  # another program's message is skipped
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            for key, value in ((L1, 1), (L2, 2), (M, 3), (R, 4)):
                self.assertEqual(self.cc.converge(mesh.node(key), value, "1", 5), 0)
        self.assertIn("TOTAL 10 over 4 nodes", out.getvalue())
        self.assertEqual(mesh.queues, {R: [], M: [], L1: [], L2: []})


class GossipTests(SynchronousTestCase):
    def test_line(self) -> None:
        """On a line L1 - M - L2, a message published at L1 reaches L2 through M, once each."""
        gossip = load("gossipsub")
        mesh = FakeMesh({R: R, M: R, L1: M, L2: M}, [(L1, M), (M, L2)])
        nodes = {k: gossip.Gossip(mesh.node(k), "news", 6) for k in (L1, M, L2)}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            for g in nodes.values():
                g.refresh_peers()
            nodes[L1].publish("hello")
            for _ in range(3):  # deliver everything queued, twice over, plus heartbeats
                for key, g in nodes.items():
                    while (message := mesh.node(key).recv()) is not None:
                        g.handle(message.from_peer_id, json.loads(message.data))
                    g.heartbeat()
        for key in (L1, M, L2):
            self.assertEqual(len(nodes[key].seen), 1, key)
        self.assertEqual(out.getvalue().count("'hello'"), 3)
