"""
The ironwood network layer (spec/yggdrasil-wire.md section 3): spanning tree, bloom filters,
path lookups and greedy source routing, as a sans-IO L{Router} driven by link events and a clock.
"""

from axl.mesh.router import NETWORK_MTU, Router
from axl.mesh.service import RouterService

__all__ = ["NETWORK_MTU", "Router", "RouterService"]
