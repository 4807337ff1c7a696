# -*- test-case-name: tests.test_realnode -*-
"""
Live interop with real Yggdrasil 0.5.12 and 0.5.14 (L{tests.realnode}): an in-process axl node
peers with a real node over tls and tcp, dialling and accepting (spec/yggdrasil-wire.md sections
1-2), and the real node's C{debug_remoteGetSelf} to us (spec/yggdrasil-extras.md section 1.6.8)
is answered. Everything runs on 127.0.0.1; skipped when ../shared/bin is missing.
"""

from __future__ import annotations


from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater

from axl.mesh.router import TICK_S
from axl.node import Node
from tests.inprocess import InProcessNodesTestCase, wait_until
from tests.realnode import RealNode, free_port, require


def up_links(node: Node, key: bytes) -> list[str]:
    """URIs of C{node}'s up links to C{key}."""
    return [p["uri"] for p in node.topology()["peers"] if p["up"] and p["public_key"] == key.hex()]


class RealPeerTests(InProcessNodesTestCase):
    """An axl node and a real node, linked twice: we dial one transport, it dials the other."""

    timeout = 60

    def _pair(self, version: str, we_dial: str, it_dials: str) -> Deferred[None]:
        require("yggdrasil", version)
        return ensureDeferred(self._scenario(version, we_dial, it_dials))

    async def _scenario(self, version: str, we_dial: str, it_dials: str) -> None:
        ours = f"{it_dials}://127.0.0.1:{free_port()}"
        real = RealNode(self, version, listen=[f"{we_dial}://127.0.0.1:0"], peers=[ours])
        node = self.start_node("A", {"Listen": [ours], "Peers": real.listen})
        await real.start_async()
        await wait_until("two links up on our side", lambda: len(up_links(node, real.key)) == 2)

        def real_sees_us() -> int:
            return sum(1 for p in real.admin("getPeers")["peers"] if p["up"] and p["key"] == node.public_key.hex())

        await wait_until("two links up on the real node", lambda: real_sees_us() == 2)
        root = min(real.key, node.public_key)
        await wait_until("the real node's root", lambda: real.root() == root)
        await wait_until("our root", lambda: node.router.root() == root)
        await wait_until("its entry in our tree", lambda: node.router.root_for_key(real.key) == root)
        # A Go node sends its lookup once, only to on-tree peers whose filter holds the key, and
        # recomputes both on its 1 s tick: let two of its ticks pass after the tree settled.
        await deferLater(reactor, 2 * TICK_S + 0.2, lambda: None)
        answer = await real.admin_async("debug_remoteGetSelf", key=node.public_key.hex())
        self.assertEqual(list(answer.values())[0]["key"], node.public_key.hex())

    def test_0_5_14_we_dial_tls_it_dials_tcp(self) -> Deferred[None]:
        return self._pair("0.5.14", "tls", "tcp")

    def test_0_5_14_we_dial_tcp_it_dials_tls(self) -> Deferred[None]:
        return self._pair("0.5.14", "tcp", "tls")

    def test_0_5_12_we_dial_tls_it_dials_tcp(self) -> Deferred[None]:
        return self._pair("0.5.12", "tls", "tcp")

    def test_0_5_12_we_dial_tcp_it_dials_tls(self) -> Deferred[None]:
        return self._pair("0.5.12", "tcp", "tls")

