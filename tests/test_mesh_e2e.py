# -*- test-case-name: tests.test_mesh_e2e -*-
"""
The routing issue's "done when": three real C{twistd -n axl} nodes on 127.0.0.1, a hub (key A)
listening on C{tls://} and two spokes (keys B and C) peered only to it. The hub's C{/topology}
tree lists all three keys; every node's tree holds itself, its ancestry and its direct peers with
the parents their owners announce; all agree on one root, the lowest key (C). Every process is
killed in cleanup; every wait is bounded.
"""

from __future__ import annotations

import signal
import time
import urllib.error
from typing import Any

from tests.test_e2e_twistd import TwistdTestCase, free_port, get_topology
from tests.vectors import keys

WAIT = 30.0


def _tree(port: int) -> dict[str, dict[str, Any]]:
    return {e["public_key"]: e for e in get_topology(port)["tree"]}


def _root_of(tree: dict[str, dict[str, Any]], key: str) -> str | None:
    seen = set()
    while key in tree and key not in seen:
        seen.add(key)
        parent = tree[key]["parent"]
        if parent == key:
            return key
        key = parent
    return None


class ThreeNodeTreeTests(TwistdTestCase):
    def test_star_agrees_on_lowest_root(self) -> None:
        """
        Hub A with spokes B and C: the hub's tree has all three keys, each node's tree has
        itself, its ancestry and its peers, the parents agree with each owner's own entry, and
        every node's root is C, the lowest key (its own parent in the tree).
        """
        a, b, c = keys()["A"], keys()["B"], keys()["C"]
        hub_uri = f"tls://127.0.0.1:{free_port()}"
        hub, hub_api = self.start("hub", {"PrivateKey": a["private_key_64"], "Listen": [hub_uri]})
        spoke_b, b_api = self.start("b", {"PrivateKey": b["private_key_64"], "Peers": [hub_uri]})
        spoke_c, c_api = self.start("c", {"PrivateKey": c["private_key_64"], "Peers": [hub_uri]})
        procs = [hub, spoke_b, spoke_c]
        apis = {a["public_key"]: hub_api, b["public_key"]: b_api, c["public_key"]: c_api}
        peers_of = {
            a["public_key"]: {b["public_key"], c["public_key"]},
            b["public_key"]: {a["public_key"]},
            c["public_key"]: {a["public_key"]},
        }
        lowest = min(apis)
        self.assertEqual(lowest, c["public_key"])

        def settled() -> bool:
            trees = {key: _tree(port) for key, port in apis.items()}
            if set(trees[a["public_key"]]) != set(apis):
                return False
            for key, tree in trees.items():
                if not ({key} | peers_of[key]) <= set(tree):
                    return False
                if _root_of(tree, key) != lowest:
                    return False
                for other, entry in tree.items():
                    own = trees.get(other, {}).get(other)
                    if own is not None and own["parent"] != entry["parent"]:
                        return False
            return True

        deadline = time.monotonic() + WAIT
        ok = False
        while time.monotonic() < deadline and not ok:
            try:
                ok = settled()
            except (OSError, urllib.error.URLError, KeyError):
                ok = False
            if not ok:
                time.sleep(0.25)
        if not ok:
            logs = "\n\n".join(p.out.decode("utf-8", "replace") for p in procs)
            self.fail(f"the three nodes did not agree on a tree; logs:\n{logs}")
        hub_tree = _tree(hub_api)
        self.assertEqual(hub_tree[lowest]["parent"], lowest)
        self.assertEqual(hub_tree[a["public_key"]]["parent"], lowest)
        self.assertEqual(hub_tree[b["public_key"]]["parent"], a["public_key"])
        peers = {p["public_key"]: p for p in get_topology(hub_api)["peers"]}
        self.assertEqual({peers[b["public_key"]]["port"], peers[c["public_key"]]["port"]}, {1, 2})
        for proc in procs:
            self.assertEqual(proc.stop(signal.SIGTERM), 0)
            self.assertNotIn(b"Traceback", proc.out + proc.err)
