# -*- test-case-name: tests.test_bridge_topology -*-
"""
The C{/topology} document (spec/axl-node.md section 5.1): our key and address, the peer table
of the link layer and the spanning-tree entries of the router, as lists that are never null.
"""

from __future__ import annotations

from typing import Any, Protocol

from axl.crypto.keys import Identity

__all__ = ["PeerTable", "TreeTable", "topology_document"]


class PeerTable(Protocol):
    """What C{/topology} reads from the link layer (L{axl.link.peers.PeerManager})."""

    def peers_info(self) -> list[dict[str, Any]]:
        """One C{peers} entry per configured peer and inbound link."""


class TreeTable(Protocol):
    """What C{/topology} reads from the router (L{axl.mesh.router.Router})."""

    def tree_info(self) -> list[dict[str, object]]:
        """One C{tree} entry per spanning-tree entry we hold, ourselves included."""


def topology_document(identity: Identity, links: PeerTable, router: TreeTable) -> dict[str, object]:
    """
    The C{/topology} document: C{our_ipv6}, C{our_public_key}, C{peers} and C{tree}, in AXL's
    key order.
    """
    return {
        "our_ipv6": identity.ipv6,
        "our_public_key": identity.public_key.hex(),
        "peers": list(links.peers_info()),
        "tree": list(router.tree_info()),
    }
