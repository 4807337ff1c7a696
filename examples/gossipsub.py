#!/usr/bin/env python3
"""
A small gossipsub over the mesh: publish/subscribe on a topic without a central server.

Run it on every node that wants the topic:

    gossipsub.py [--node URL] --topic news [--publish TEXT ...] [--duration S] [--degree D]

Each node talks only to its direct peers (from /topology). It keeps a "mesh" of up to D of them
and forwards every new message to its mesh peers (eager push); once a second it tells the other
peers which message ids it has seen lately (IHAVE), and a peer missing one asks for it (IWANT).
Message ids are content hashes, so a message is delivered once per node however many paths
bring it. All control traffic is ordinary /send payloads (JSON with "kind": "axl-gossip").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import OrderedDict
from typing import Any

from axl.client import DEFAULT_NODE_URL, NodeClient, NodeError

KIND = "axl-gossip"
HISTORY = 120  # seconds a message id stays in the IHAVE window / the seen cache


class Gossip:
    def __init__(self, node: NodeClient, topic: str, degree: int) -> None:
        self.node = node
        self.topic = topic
        self.degree = degree
        self.me = node.our_key()
        self.peers: list[str] = []
        self.mesh: list[str] = []
        self.seen: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def refresh_peers(self) -> None:
        topology = self.node.topology()
        self.peers = sorted({p["public_key"] for p in topology.get("peers") or [] if p.get("up") and p.get("public_key")})
        keep = [p for p in self.mesh if p in self.peers]
        spare = [p for p in self.peers if p not in keep]
        random.shuffle(spare)
        self.mesh = (keep + spare)[: self.degree]

    def _send(self, peer: str, body: dict[str, Any]) -> None:
        try:
            self.node.send(peer, json.dumps(dict(body, kind=KIND, topic=self.topic)).encode())
        except NodeError as e:
            print(f"  cannot reach {peer[:16]}...: {e}")

    def publish(self, text: str) -> None:
        message = {"type": "publish", "origin": self.me, "data": text, "nonce": random.getrandbits(64)}
        self._accept(message, via=None)

    def _accept(self, message: dict[str, Any], via: str | None) -> None:
        mid = hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()[:32]
        if mid in self.seen:
            return
        self.seen[mid] = (time.monotonic(), message)
        who = "us" if via is None else f"{message['origin'][:16]}... (via {via[:16]}...)"
        print(f"[{self.topic}] {message['data']!r} from {who}")
        for peer in self.mesh:
            if peer not in (via, message["origin"]):
                self._send(peer, message)

    def heartbeat(self) -> None:
        now = time.monotonic()
        while self.seen and now - next(iter(self.seen.values()))[0] > HISTORY:
            self.seen.popitem(last=False)
        self.refresh_peers()
        recent = [mid for mid, (t, _) in self.seen.items() if now - t < 10]
        if recent:
            for peer in self.peers:
                if peer not in self.mesh:
                    self._send(peer, {"type": "ihave", "ids": recent})

    def handle(self, sender: str, body: dict[str, Any]) -> None:
        if body.get("type") == "publish":
            message = {k: body[k] for k in ("type", "origin", "data", "nonce") if k in body}
            self._accept(message, via=sender)
        elif body.get("type") == "ihave":
            wanted = [mid for mid in body.get("ids", []) if mid not in self.seen]
            if wanted:
                self._send(sender, {"type": "iwant", "ids": wanted})
        elif body.get("type") == "iwant":
            for mid in body.get("ids", []):
                if mid in self.seen:
                    self._send(sender, self.seen[mid][1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node", default=DEFAULT_NODE_URL)
    parser.add_argument("--topic", default="news")
    parser.add_argument("--publish", action="append", default=[], help="message(s) to publish at start")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run")
    parser.add_argument("--degree", type=int, default=6, help="mesh size D")
    args = parser.parse_args(argv)
    gossip = Gossip(NodeClient(args.node), args.topic, args.degree)
    gossip.refresh_peers()
    print(f"{gossip.me[:16]}... on topic {args.topic!r}: {len(gossip.peers)} peers, mesh {len(gossip.mesh)}")
    for text in args.publish:
        gossip.publish(text)
    end, next_beat = time.monotonic() + args.duration, time.monotonic() + 1
    try:
        while time.monotonic() < end:
            message = gossip.node.recv()
            if message is None:
                time.sleep(0.05)
            else:
                try:
                    body = json.loads(message.data)
                except ValueError:
                    body = None
                if isinstance(body, dict) and body.get("kind") == KIND and body.get("topic") == args.topic:
                    gossip.handle(message.from_peer_id, body)
                else:
                    print(f"skipping another program's message from {message.from_peer_id[:16]}...")
            if time.monotonic() >= next_beat:
                gossip.heartbeat()
                next_beat = time.monotonic() + 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
