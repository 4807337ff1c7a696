"""
Whole nodes (L{axl.service.make_node_service}) run inside the test process on 127.0.0.1 with the
real reactor, for the few end-to-end tests that reach into a node's layers (C{node.ipv6},
C{node.tcp}). Each node has a transcript identity ("A", "B", "C") and is stopped in cleanup.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from axl.config import config_from_dict
from axl.crypto.keys import Identity
from axl.node import Node
from axl.service import make_node_service
from tests.test_e2e_twistd import free_port
from tests.vectors import identity

__all__ = ["InProcessNodesTestCase", "wait_until"]


async def wait_until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> float:
    """
    Poll C{check} every 50 ms from the real reactor until it holds; the seconds it took. Fails
    naming C{what} after C{timeout} seconds. (From C{inlineCallbacks} code: C{yield
    Deferred.fromCoroutine(wait_until(...))}.)
    """
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await deferLater(reactor, 0.05, lambda: None)
    return time.monotonic() - start


class InProcessNodesTestCase(TestCase):
    """A TestCase that can start whole nodes in-process."""

    def start_node(self, name: str, config: dict[str, Any], ident: Identity | None = None) -> Node:
        """
        Start node C{name} with C{config} (plus a free bridge port); stop it in cleanup.

        @param ident: its identity; transcript node C{name}'s when not given.
        """
        config = {**config, "api_port": free_port(), "tcp_port": 7000}
        ident = ident if ident is not None else identity(name)
        top = make_node_service(config_from_dict(config), reactor, identity=ident)
        top.startService()
        self.addCleanup(top.stopService)
        assert top.node is not None
        return top.node

    def start_star(self) -> tuple[Node, Node, Node]:
        """A listens on tcp://127.0.0.1; B and C peer only to A. Returns (A, B, C)."""
        listen = f"tcp://127.0.0.1:{free_port()}"
        a = self.start_node("A", {"Listen": [listen]})
        b = self.start_node("B", {"Peers": [listen]})
        c = self.start_node("C", {"Peers": [listen]})
        return a, b, c
