#!/usr/bin/env python3
"""
Convergecast: add up one number per node along the mesh's spanning tree.

Run it on every node (in any order, within --timeout of each other):

    convergecast.py [--node URL] --value N [--round R] [--timeout S]

Each node reads /topology: its parent is its own entry's "parent" in "tree", and the root is the
node whose parent is itself (Yggdrasil's convention, kept by axl and by AXL's Go node). Its
children are the entries whose parent is this node. A node waits for one report from each child,
adds its own value and sends the subtotal to its parent with /send; the root prints the total.
Reports that arrive before the script starts wait in the node's /recv queue, so start order does
not matter. Messages of other programs that arrive meanwhile are printed and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from axl.client import DEFAULT_NODE_URL, NodeClient

KIND = "axl-convergecast"


def tree_position(topology: dict[str, Any]) -> tuple[str, str | None, list[str]]:
    """(our key, parent key or None for the root, child keys)."""
    me = topology["our_public_key"]
    tree = topology.get("tree") or []
    parent = next((e.get("parent") for e in tree if e.get("public_key") == me), None)
    if parent is None:
        raise SystemExit("our node is not in its own tree yet; wait a second and retry")
    children = sorted({e["public_key"] for e in tree if e.get("parent") == me and e.get("public_key") != me})
    return me, (None if parent in (me, "") else parent), children


def converge(node: Any, value: float, round_tag: str, timeout: float) -> int:
    """Run one convergecast on C{node} (an axl.client.NodeClient); return the exit status."""
    me, parent, children = tree_position(node.topology())
    role = "ROOT" if parent is None else ("LEAF" if not children else "INTERMEDIATE")
    print(f"{me[:16]}... is {role}; parent {parent[:16] + '...' if parent else '-'}; {len(children)} children")

    total, count, nodes = value, 1, [me]
    waiting = set(children)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        message = node.recv()
        if message is None:
            time.sleep(0.1)
            continue
        try:
            report = json.loads(message.data)
        except ValueError:
            report = None
        if not isinstance(report, dict) or report.get("kind") != KIND or report.get("round") != round_tag:
            print(f"skipping another program's message from {message.from_peer_id[:16]}...")
            continue
        sender = report.get("from")
        if sender not in waiting:
            print(f"unexpected report from {str(sender)[:16]}...; ignored")
            continue
        waiting.discard(sender)
        total += report["sum"]
        count += report["count"]
        nodes.extend(report["nodes"])
        print(f"  child {sender[:16]}... reported sum {report['sum']} over {report['count']} nodes")
    if waiting:
        print(f"timed out waiting for {len(waiting)} children; reporting what arrived")

    if parent is None:
        print(f"TOTAL {total} over {count} nodes (mean {total / count:g})")
        return 0 if not waiting else 1
    report = {"kind": KIND, "round": round_tag, "from": me, "sum": total, "count": count, "nodes": nodes}
    node.send(parent, json.dumps(report).encode())
    print(f"sent subtotal {total} over {count} nodes to the parent")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node", default=DEFAULT_NODE_URL)
    parser.add_argument("--value", type=float, required=True, help="this node's number")
    parser.add_argument("--round", default="1", help="tag that keeps separate runs apart")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for children")
    args = parser.parse_args(argv)
    return converge(NodeClient(args.node), args.value, args.round, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
