# -*- test-case-name: tests.test_service -*-
"""
L{Node}: the one object a running node's parts hang on.

It owns the identity and the config; C{axl.service} attaches the layers to it as they are built
(C{links}, C{router}, C{sessions}, C{ipv6}, C{tcp}; None until then), and it is what endpoints,
streams and the bridge are given.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from axl.config import NodeConfig
from axl.crypto.keys import Identity
from axl.interfaces import INode

__all__ = ["Node"]


@implementer(INode)
class Node:
    """
    A node: identity, config, clock, and the layers attached by C{axl.service}.

    @ivar config: the L{NodeConfig}.
    @ivar identity: the node's L{Identity}.
    @ivar clock: the clock every timer of the node uses.
    @ivar links: the link layer (peering); it may offer C{peers_info() -> list[dict]}.
    @ivar router: the ironwood router; it may offer C{tree_info() -> list[dict]}.
    @ivar sessions: the encrypted session layer (L{axl.interfaces.ISessions}).
    @ivar ipv6: the IPv6 carriage (L{axl.interfaces.IIPv6Layer}).
    @ivar tcp: the userspace TCP stack.
    """

    def __init__(self, config: NodeConfig, identity: Identity, clock: IReactorTime) -> None:
        self.config = config
        self.identity = identity
        self.clock = clock
        self.links: Any = None
        self.router: Any = None
        self.sessions: Any = None
        self.ipv6: Any = None
        self.tcp: Any = None

    def __repr__(self) -> str:
        return f"<Node {self.identity!r}>"

    @property
    def public_key(self) -> bytes:
        """Our 32-byte ed25519 public key."""
        return self.identity.public_key

    def topology(self) -> dict[str, Any]:
        """
        The C{/topology} document (spec/axl-node.md section 5.1): C{our_ipv6},
        C{our_public_key}, C{peers} and C{tree}, always lists (never null).
        """
        peers_info = getattr(self.links, "peers_info", None)
        tree_info = getattr(self.router, "tree_info", None)
        return {
            "our_ipv6": self.identity.ipv6,
            "our_public_key": self.identity.public_key.hex(),
            "peers": list(peers_info()) if peers_info is not None else [],
            "tree": list(tree_info()) if tree_info is not None else [],
        }
