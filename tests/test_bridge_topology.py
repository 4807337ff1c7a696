# -*- test-case-name: tests.test_bridge_topology -*-
"""
Tests for L{axl.bridge.app.Bridge}'s C{/topology} (spec/axl-node.md section 5.1, section 13
item 23: lists, never null).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.bridge import Bridge
from axl.bridge.topology import topology_document
from axl.crypto import Identity

KEY_A = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
ADDR_A = "202:24ae:c219:8a4a:de94:eae2:b97e:ac87"


class FakeLinks:
    def peers_info(self) -> list[dict[str, Any]]:
        return [{"uri": "tls://127.0.0.1:9001", "up": True, "inbound": False, "public_key": KEY_A,
                 "root": KEY_A, "port": 1, "coords": None}]


class FakeRouter:
    def tree_info(self) -> list[dict[str, Any]]:
        return [{"public_key": KEY_A, "parent": KEY_A, "sequence": 7}]


class NoLinks:
    def peers_info(self) -> list[dict[str, Any]]:
        return []


class NoTree:
    def tree_info(self) -> list[dict[str, Any]]:
        return []


def bridge(identity: Identity, links: Any, router: Any) -> StubTreq:
    """A client of a bridge whose /topology reads C{links} and C{router} (no message routes used)."""
    topology = partial(topology_document, identity, links, router)
    return StubTreq(Bridge(topology, None, None, Clock(), None).app.resource())  # type: ignore[arg-type]


class TopologyTests(SynchronousTestCase):
    """GET /topology through the Klein app."""

    def setUp(self) -> None:
        self.treq = bridge(Identity(bytes(32)), NoLinks(), NoTree())

    def get(self, method: str = "GET", path: str = "/topology") -> tuple[int, dict[str, list[str]], bytes]:
        response = self.successResultOf(self.treq.request(method, "http://127.0.0.1:9002" + path))
        body = self.successResultOf(response.content())
        headers = {k.decode().lower(): [v.decode() for v in vs] for k, vs in response.headers.getAllRawHeaders()}
        return response.code, headers, body

    def test_fresh_node(self) -> None:
        """A node without peers answers with its key, its address and empty lists, in AXL's key order."""
        code, headers, body = self.get()
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], ["application/json"])
        self.assertTrue(body.endswith(b"\n"))
        doc = json.loads(body)
        self.assertEqual(list(doc), ["our_ipv6", "our_public_key", "peers", "tree"])
        self.assertEqual(doc, {"our_ipv6": ADDR_A, "our_public_key": KEY_A, "peers": [], "tree": []})

    def test_never_null(self) -> None:
        """Empty peers and tree are [] in the raw body, never null."""
        _code, _headers, body = self.get()
        self.assertNotIn(b"null", body)
        self.assertIn(b'"peers": []', body)

    def test_layers_fill_lists(self) -> None:
        """peers come from the link layer's peers_info() and tree from the router's tree_info()."""
        self.treq = bridge(Identity(bytes(32)), FakeLinks(), FakeRouter())
        doc = json.loads(self.get()[2])
        self.assertEqual(doc["peers"], FakeLinks().peers_info())
        self.assertEqual(doc["tree"], FakeRouter().tree_info())

    def test_other_methods(self) -> None:
        """Methods other than GET (and HEAD) get 405 (AXL answers any method)."""
        for method in ("POST", "PUT", "DELETE"):
            self.assertEqual(self.get(method)[0], 405, method)

    def test_head(self) -> None:
        """HEAD /topology answers 200 without a body."""
        code, _headers, body = self.get("HEAD")
        self.assertEqual((code, body), (200, b""))

    def test_unknown_path(self) -> None:
        """A path below /topology is 404."""
        self.assertEqual(self.get(path="/topology/x")[0], 404)

    def test_two_bridges(self) -> None:
        """Bridge state is per instance: two bridges serve their own nodes."""
        treq = bridge(Identity(bytes(range(1, 33))), NoLinks(), NoTree())
        response = self.successResultOf(treq.get("http://127.0.0.1:9002/topology"))
        doc = json.loads(self.successResultOf(response.content()))
        self.assertNotEqual(doc["our_public_key"], KEY_A)
        self.assertEqual(json.loads(self.get()[2])["our_public_key"], KEY_A)
