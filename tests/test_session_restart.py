# -*- test-case-name: tests.test_session_restart -*-
"""
The transcript's restart episode (../shared/vectors/README.md, t = 5-32 s), replayed with our
stacks in the roles of B and C: the packets on the wire must follow exactly the sequence the
real v0.5.12 nodes produced, including the two lost requests at 23 s and 26 s and the healing
at 29 s (spec/yggdrasil-wire.md section 4.5: traffic without a session, throwaway inits, the
same-second rule).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity
from axl.ipv6.testing import FakeNetwork, Stack
from axl.session.proto import ProtoTimeout
from tests.test_session_manager import describe
from tests.vectors import VECTORS

T0 = 1795625997.0  # the transcript's t = 0 (README: B's init at 7.006 carries 1795626002 = t 5)
GO_BUILD = {
    "buildname": "yggdrasil",
    "buildversion": "0.5.12",
    "buildplatform": "linux",
    "buildarch": "amd64",
}


def _transcript() -> list[tuple[Any, ...]]:
    """(t, sender, kind, fields..., data_len) of every session packet between B and C."""
    out = []
    for line in (VECTORS / "decoded-B-A.jsonl").read_text().splitlines():
        d = json.loads(line)
        s = d.get("session")
        if d.get("type") != 9 or not s:
            continue
        if s["type"] == "SessionTraffic":
            fields: tuple[Any, ...] = ("traffic", s["localKeySeq"], s["remoteKeySeq"], s["nonce"])
        else:
            kind = "init" if s["type"] == "SessionInit" else "ack"
            fields = (kind, s["keySeq"], s["seq"])
        out.append((d["t"], d["source_name"]) + fields + (d["data_len"],))
    return out


class RestartEpisodeTests(SynchronousTestCase):
    """B keeps its session while C restarts with the same key."""

    def setUp(self) -> None:
        keys = json.loads((VECTORS / "keys.json").read_text())
        self.b_id = Identity(bytes.fromhex(keys["B"]["seed"]))
        self.c_id = Identity(bytes.fromhex(keys["C"]["seed"]))
        self.names = {self.b_id.public_key: "B", self.c_id.public_key: "C"}
        self.idents = {self.b_id.public_key: self.b_id, self.c_id.public_key: self.c_id}
        self.clock = Clock()
        self.clock.advance(T0)
        self.net = FakeNetwork()
        self.b = self._stack(self.b_id)
        self.c = self._stack(self.c_id)
        self.log: list[tuple[Any, ...]] = []

    def _stack(self, ident: Identity) -> Stack:
        stack = Stack(
            self.net,
            ident,
            self.clock,
            node_info={"name": "node-" + ("B" if ident is self.b_id else "C")},
            tree_keys=lambda: [self.c_id.public_key, bytes(32)],
            build=GO_BUILD,
        )
        # Go keeps only the newest payload per remote while a session is set up; we keep up to
        # MAX_BUFFERED_PER_KEY in order. Keep one here, so the wire matches the transcript.
        stack.sessions.max_buffered_per_key = 1
        self.addCleanup(stack.stop)
        return stack

    def _at(self, t: float) -> None:
        self.clock.advance(T0 + t - self.clock.seconds())

    def _flush(self) -> None:
        start = len(self.net.sent)
        self.net.flush()
        for wire in self.net.sent[start:]:
            source, _, data = wire
            t = self.clock.seconds() - T0
            self.log.append((t, self.names[source]) + describe(wire, self.idents) + (len(data),))

    def test_episode(self) -> None:
        """
        The session packets between B and C from 7 s to 32 s are, in order, the transcript's:
        same kinds, key sequences, init times, nonces and sizes. The 23 s and 26 s requests
        time out, the 29 s and 32 s ones are answered.
        """
        c = self.c_id.public_key
        results: dict[str, list[Any]] = {}

        def track(name: str, d: Any) -> None:
            results[name] = []
            d.addCallbacks(results[name].append, lambda f: results[name].append(f.value))

        self._at(5.0)  # no route yet: the init is lost, the payload waits in B's buffer
        self.net.filter = lambda w: None
        track("5", self.b.proto.request_self(c))
        self.net.flush()
        self.net.filter = None
        self._at(7.0)
        track("7", self.b.proto.request_node_info(c))
        self._flush()
        self._at(9.0)
        track("9", self.b.proto.request_self(c))
        self._flush()
        self._at(14.0)  # C goes down
        self.c.stop()
        del self.net.routers[c]
        self._at(18.0)  # C is back with the same key and no sessions
        self.c = self._stack(self.c_id)
        self._at(23.0)
        track("23", self.b.proto.request_self(c))
        self._flush()
        self._at(26.0)
        track("26", self.b.proto.request_node_info(c))
        self._flush()
        self._at(29.0)
        track("29", self.b.proto.request_self(c))
        self._flush()
        self._at(32.0)
        track("32", self.b.proto.request_node_info(c))
        self._flush()
        self._at(40.0)

        expected = [row[1:] for row in _transcript()]
        self.assertEqual(len(expected), 18)
        self.assertEqual([row[1:] for row in self.log], expected)
        # ... and at the same whole seconds.
        self.assertEqual([int(row[0]) for row in self.log], [int(row[0]) for row in _transcript()])

        # The 5 s request never left B's buffer (the 7 s one replaced it). Go's admin call
        # timed out at 11 s because Go keeps one callback per key and request type; we answer
        # every caller still waiting, so the 9 s answer also serves the 5 s call.
        self.assertEqual(results["5"], results["9"])
        self.assertEqual(
            results["7"],
            [
                {
                    "buildarch": "amd64",
                    "buildname": "yggdrasil",
                    "buildplatform": "linux",
                    "buildversion": "0.5.12",
                    "name": "node-C",
                }
            ],
        )
        self.assertEqual(results["9"], [{"key": c.hex(), "routing_entries": "2"}])
        self.assertIsInstance(results["23"][0], ProtoTimeout)
        self.assertIsInstance(results["26"][0], ProtoTimeout)
        self.assertEqual(results["29"], [{"key": c.hex(), "routing_entries": "2"}])
        self.assertEqual(results["32"], results["7"])
