"""
Remote-created routing state (issue 12): what the tables a remote party can grow cost, and what
their caps hold them to. In process, on a simulated clock, nothing on the network:

 - tree flood: one peer announces made-up nodes (each its own root, validly signed) at its
   announce rate limit; tree entries held and their bytes, with the per-peer quota
   (L{axl.mesh.tree.MAX_ENTRIES_PER_PEER}) and without it (nor the global cap);
 - sessions: session inits from fresh keys within the init limits; bytes per session and the
   sessions held with a (lowered) cap;
 - rumors and path entries: sends to fresh keys (a rumor holding one packet each), then their
   signed answers (a path entry each).

Bytes per entry are tracemalloc's (Python allocations; pynacl's keys are Python bytes too), RSS
the process's growth during a flood (without tracemalloc, whose records would inflate it). The figures feed L{axl.worstcase.ROUTING_STATE_BYTES}.

Run: python bench/bench_tree_flood.py [--quick]
"""

from __future__ import annotations

import gc
import os
import sys
import tracemalloc
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock  # noqa: E402

from bench.common import Figure, Options, benchmark, run_standalone  # noqa: E402

from axl.crypto.keys import Identity  # noqa: E402
from axl.mesh.router import Router  # noqa: E402
from axl.mesh.tree import MAX_ENTRIES_PER_PEER  # noqa: E402
from axl.mesh.wire import (  # noqa: E402
    FRAME_ANNOUNCE,
    MAX_WATERMARK,
    Announce,
    PathNotify,
    notify_info_bytes,
    tree_tbs,
)
from axl.session.codec import TYPE_INIT, SessionInit, encode_init  # noqa: E402
from axl.session.keys import BoxKeyPair, x25519_public  # noqa: E402
from axl.session.manager import SessionManager  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class _Link:
    """A link that drops what it is sent."""

    priority = 0
    order = 1
    inbound = True
    uri = "tcp://192.0.2.1:1"

    def __init__(self, remote_key: bytes) -> None:
        self.remote_key = remote_key

    def send_frame(self, frame_type: int, payload: bytes) -> None:
        pass

    def close(self, reason: str) -> None:
        pass


class _Router:
    mtu = 65535

    def send(self, dest_key: bytes, data: bytes) -> None:
        pass

    def send_lookup(self, partial_key: bytes) -> None:
        pass


def fresh(i: int, tag: bytes) -> Identity:
    return Identity(tag + i.to_bytes(32 - len(tag), "big"))


def measured(work: Callable[[], int], trace: bool = True) -> tuple[int, float, float]:
    """
    Run C{work} (it returns the entries it made): C{(entries, bytes each, RSS growth in bytes)};
    bytes each only when C{trace} (tracemalloc's own records inflate RSS, so not both at once).
    """
    gc.collect()
    rss = rss_bytes()
    if trace:
        tracemalloc.start()
    entries = work()
    gc.collect()
    current = tracemalloc.get_traced_memory()[0] if trace else 0
    tracemalloc.stop()
    return entries, current / max(1, entries), rss_bytes() - rss


def tree_flood(count: int, quota: int | None, trace: bool = True) -> tuple[int, float, float]:
    me = fresh(0, b"me")
    payloads = []
    for i in range(count):
        node = fresh(i, b"fake")
        tbs = tree_tbs(node.public_key, node.public_key, 1, 1, 0)
        sig = node.sign(tbs)
        payloads.append(Announce(node.public_key, node.public_key, 1, 1, 0, sig, sig).encode())
    clock = Clock()
    router = Router(me, clock, lambda s, d: None)
    router.start()
    link = _Link(fresh(1, b"attacker").public_key)
    router.link_up(link)
    if quota is None:
        router.tree.max_entries_per_peer = router.tree.max_entries = count + 1

    def work() -> int:
        for i, payload in enumerate(payloads):
            router.frame_received(link, FRAME_ANNOUNCE, payload)
            if i % 100 == 99:
                clock.advance(0.5)  # 200 per second: the announce rate limit
        return len(router.tree.infos) - 1

    try:
        return measured(work, trace)
    finally:
        router.stop()


def sessions(count: int) -> tuple[int, float, float]:
    me = fresh(0, b"me")
    recipient = x25519_public(me.public_key)
    packets = []
    for i in range(count):
        remote = fresh(i, b"sess")
        init = SessionInit(BoxKeyPair.generate().public, BoxKeyPair.generate().public, 0, 1)
        packets.append((remote.public_key, encode_init(TYPE_INIT, init, remote, recipient)))
    clock = Clock()
    clock.advance(1000)
    manager = SessionManager(me, _Router(), clock)
    manager.max_sessions = count  # uncapped: every init makes one

    def work() -> int:
        for i, (key, packet) in enumerate(packets):
            manager.traffic_received(key, packet)
            if i % 100 == 99:
                clock.advance(0.5)  # 200 per second: the init limit in all
        return len(manager.sessions_info())

    try:
        return measured(work)
    finally:
        manager.stop()


def lookups(count: int) -> tuple[tuple[int, float, float], tuple[int, float, float]]:
    me = fresh(0, b"me")
    remotes = [fresh(i, b"path") for i in range(count)]
    notifies = [
        PathNotify((), MAX_WATERMARK, r.public_key, me.public_key, 5, (1, 2, 3),
                   r.sign(notify_info_bytes(5, (1, 2, 3))))  # fmt: skip
        for r in remotes
    ]
    clock = Clock()
    router = Router(me, clock, lambda s, d: None)
    router.start()
    finder = router.pathfinder
    finder.max_paths = finder.max_rumors = count  # uncapped
    data = b"x" * 200  # an init or ack is ~200 bytes

    def rumors() -> int:
        for r in remotes:
            router.send(r.public_key, data)
        return len(finder.rumors)

    def paths() -> int:
        for notify in notifies:
            finder._handle_notify(notify)  # noqa: SLF001 - the answer as if routed to us
        return len(finder.paths)

    try:
        return measured(rumors), measured(paths)
    finally:
        router.stop()


@benchmark("tree_flood", "remote-created routing state: tree flood with and without the quota, "
           "bytes per tree entry, session, rumor, path entry")  # fmt: skip
def measure(opts: Options) -> list[Figure]:
    n = 2_000 if opts.quick else 20_000
    capped, _, rss_capped = tree_flood(n, MAX_ENTRIES_PER_PEER, trace=False)
    held, _, rss_held = tree_flood(n, None, trace=False)
    _, per_entry, _ = tree_flood(n // 4, None)
    s_held, per_session, _ = sessions(n // 10)
    (_, per_rumor, _), (_, per_path, _) = lookups(n // 10)
    return [
        Figure("tree_flood.held_quota", f"{n} made-up nodes from one peer: entries held with the quota",
               capped, "entries", better="lower"),
        Figure("tree_flood.held_no_quota", f"{n} made-up nodes from one peer: entries held without it",
               held, "entries", better="lower"),
        Figure("tree_flood.rss_quota", "RSS growth while they are announced, with the quota",
               rss_capped / 2**20, "MiB", better="lower"),
        Figure("tree_flood.rss_no_quota", "RSS growth while they are announced, without it",
               rss_held / 2**20, "MiB", better="lower"),
        Figure("tree_flood.entry_bytes", "bytes per tree entry (tracemalloc)", per_entry, "B", better="lower"),
        Figure("tree_flood.session_bytes", f"bytes per session ({s_held} from fresh-key inits, tracemalloc)",
               per_session, "B", better="lower"),
        Figure("tree_flood.rumor_bytes", "bytes per rumor holding one 200-byte packet (tracemalloc)",
               per_rumor, "B", better="lower"),
        Figure("tree_flood.path_bytes", "bytes per path entry (tracemalloc)", per_path, "B", better="lower"),
    ]  # fmt: skip


if __name__ == "__main__":
    run_standalone(measure)
