# -*- test-case-name: tests.test_mixed_mesh -*-
"""
The mixed mesh end to end (issue 19, item 3): 14 real yggdrasil 0.5.14 nodes and 6 axl nodes on
127.0.0.1, a random connected graph of tls:// links (L{tests.mixedmesh}). Checks, before and
after killing the root and a quarter of the real nodes (the graph stays connected): every node's
own root is the lowest live key; C{/send} succeeds between every ordered pair of axl nodes; every
real node's C{debug_remoteGetSelf} to every axl node is answered, once the real nodes' filters can
hold our keys (a Go node's one-shot lookup sent earlier can die at a real node whose filter lags;
see L{MixedMesh.settle_filters_fully}). Skipped without ../shared/bin.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase

from tests.mixedmesh import MixedMesh
from tests.realnode import require

N_REAL = 14
N_AXL = 6


class MixedMeshTests(TestCase):
    timeout = 150

    def test_mixed_mesh(self) -> Deferred[None]:
        """Root agreement, all /send pairs and every remote GetSelf, then the same after churn."""
        require("yggdrasil")
        return ensureDeferred(self._scenario())

    async def _check(self, mesh: MixedMesh, when: str) -> None:
        await mesh.converge(40)
        await mesh.settle_filters()
        sends = await mesh.send_all_pairs()
        self.assertEqual(len(sends), N_AXL * (N_AXL - 1))
        failed = {pair: result for pair, result in sends.items() if result[0] != 200}
        self.assertEqual(failed, {}, f"/send failures {when}")
        # A Go node sends its lookup once: ask only when its filters can hold our keys.
        await mesh.settle_filters_fully()
        asks = await mesh.remote_get_self()
        self.assertEqual(len(asks), len(mesh.real) * len(mesh.axl))
        unanswered = {pair: result for pair, result in asks.items() if result[0] != "ok"}
        self.assertEqual(unanswered, {}, f"unanswered debug_remoteGetSelf {when}")

    async def _scenario(self) -> None:
        mesh = MixedMesh(N_REAL, N_AXL, seed=19, cleanup=self.addCleanup)
        await mesh.start()
        await self._check(mesh, "at start")
        victims = mesh.churn_victims()
        old_root = mesh.keys[victims[0]]
        for i in victims:
            await ensureDeferred(_stopped(mesh, i))
        self.assertNotEqual(mesh.lowest_alive(), old_root)
        await self._check(mesh, "after churn")


async def _stopped(mesh: MixedMesh, i: int) -> None:
    d = mesh.stop_node(i)
    if d is not None:
        await d
