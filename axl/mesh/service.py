# -*- test-case-name: tests.test_mesh_router -*-
"""
L{RouterService}: starts the router's maintenance tick (spec/yggdrasil-wire.md section 3.5.1)
with the node and stops its timers.
"""

from __future__ import annotations

from twisted.application.service import Service

from axl.mesh.router import Router

__all__ = ["RouterService"]


class RouterService(Service):
    """Runs a L{Router}: C{start()} on service start, C{stop()} (no timers left) on stop."""

    name = "axl-router"

    def __init__(self, router: Router) -> None:
        self.router = router

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.router.start()

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        self.router.stop()
