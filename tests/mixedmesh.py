"""
A mixed mesh on 127.0.0.1 (issue 19, item 3): real yggdrasil nodes (L{tests.realnode}) and axl
nodes (whole L{axl.service.make_node_service} nodes in this process, on the running reactor),
linked over tls:// in a random connected graph. Used by C{tests.test_mixed_mesh} (about 20 nodes)
and C{bench/bench_mixed_mesh.py} (48, 100 nodes).

The lowest key always belongs to a real node (keys are generated here, so we choose), so "kill the
root" kills a real process. The root of a node is where its own parent chain ends (stale entries
of former roots may linger in any tree view, as in ironwood).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from axl.client import request as http
from axl.config import config_from_dict
from axl.crypto.keys import Identity
from axl.mesh.router import TICK_S
from axl.node import Node
from axl.service import make_node_service
from tests.inprocess import wait_until
from tests.realnode import VERSIONS, AdminError, RealNode, free_port

__all__ = ["MixedMesh", "wait_until"]


class MixedMesh:
    """
    C{n_real} real nodes and C{n_axl} axl nodes in a random connected graph.

    @ivar keys: node index -> public key (indices below C{n_real} are real nodes).
    @ivar edges: C{(i, j)} with i listening and j dialling.
    @ivar alive: indices of the nodes still running.
    """

    def __init__(
        self,
        n_real: int,
        n_axl: int,
        degree: float = 3.0,
        seed: int = 0,
        version: str = VERSIONS[-1],
        cleanup: Callable[[Callable[[], object]], None] | None = None,
    ) -> None:
        self.n_real, self.n_axl = n_real, n_axl
        n = n_real + n_axl
        self.rng = random.Random(seed)
        idents = sorted((Identity.generate() for _ in range(n)), key=lambda i: i.public_key)
        # The lowest key goes to a real node; the others are shuffled over the roles.
        rest = idents[1:]
        self.rng.shuffle(rest)
        self.identities = [idents[0]] + rest
        self.keys = [i.public_key for i in self.identities]
        self.alive = set(range(n))
        self.edges = self._graph(n, degree)
        # Losing the root (node 0) must not split the rest: join what it would split.
        while not self.connected_without([0]):
            rest = [i for i in range(1, n)]
            part = self._reachable(1, {0})
            a = self.rng.choice(sorted(part))
            b = self.rng.choice([i for i in rest if i not in part])
            self.edges = sorted(set(self.edges) | {(min(a, b), max(a, b))})
        self.ports = [free_port() for _ in range(n)]
        self.real: dict[int, RealNode] = {}
        self.axl: dict[int, Node] = {}
        self._services: dict[int, Any] = {}
        self.version = version
        self._cleanup = cleanup

    def _graph(self, n: int, degree: float) -> list[tuple[int, int]]:
        order = list(range(n))
        self.rng.shuffle(order)
        pairs = set()
        for k in range(1, n):
            i, j = order[self.rng.randrange(k)], order[k]
            pairs.add((min(i, j), max(i, j)))
        target = int(n * degree / 2)
        while len(pairs) < target:
            i, j = sorted(self.rng.sample(range(n), 2))
            pairs.add((i, j))
        # No leaves: every node gets a second link, so no single failure isolates one.
        for i in range(n):
            while sum(1 for pair in pairs if i in pair) < 2:
                j = self.rng.randrange(n)
                if j != i:
                    pairs.add((min(i, j), max(i, j)))
        return sorted(pairs)

    def uri(self, i: int) -> str:
        return f"tls://127.0.0.1:{self.ports[i]}"

    def neighbours(self, i: int) -> list[int]:
        return [b if a == i else a for a, b in self.edges if i in (a, b)]

    def is_real(self, i: int) -> bool:
        return i < self.n_real

    # -- start / stop ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every node (real ones in parallel), returning once their control ports answer."""
        n = self.n_real + self.n_axl
        for i in range(n):
            listen = [self.uri(i)] if any(a == i for a, _ in self.edges) else []
            peers = [self.uri(a) for a, b in self.edges if b == i]
            if self.is_real(i):
                ident = self.identities[i]
                node = RealNode(
                    None,
                    self.version,
                    listen=listen,
                    peers=peers,
                    private_key=(ident.seed + ident.public_key).hex(),
                )
                self.real[i] = node
                if self._cleanup is not None:
                    self._cleanup(node.stop)
                node.start(wait=False)
            else:
                config = {"Listen": listen, "Peers": peers, "api_port": free_port(), "tcp_port": 7000}
                top = make_node_service(
                    config_from_dict(config), reactor, identity=self.identities[i]
                )
                top.startService()
                self._services[i] = top
                if self._cleanup is not None:
                    self._cleanup(lambda i=i: self.stop_node(i))
                self.axl[i] = top.node
        await DeferredList([deferToThread(node.ready) for node in self.real.values()])

    def api(self, i: int) -> int:
        return int(self.axl[i].config.api_port)

    def stop_node(self, i: int) -> Deferred[Any] | None:
        """Stop node C{i} (kill the process, or stop the in-process services)."""
        self.alive.discard(i)
        if i in self.real:
            self.real.pop(i).stop()
            return None
        top = self._services.pop(i, None)
        self.axl.pop(i, None)
        if top is not None:
            return top.stopService()  # type: ignore[no-any-return]
        return None

    async def stop(self) -> None:
        for i in list(self.alive):
            d = self.stop_node(i)
            if d is not None:
                await d

    # -- observations ----------------------------------------------------------------------

    def lowest_alive(self) -> bytes:
        return min(self.keys[i] for i in self.alive)

    def root_of(self, i: int) -> bytes | None:
        try:
            if i in self.real:
                return self.real[i].root()
            return self.axl[i].router.root()  # type: ignore[no-any-return]
        except (OSError, AdminError, KeyError):
            return None

    def agreed(self) -> bool:
        low = self.lowest_alive()
        return all(self.root_of(i) == low for i in self.alive)

    async def converge(self, timeout: float) -> float:
        """Wait until every live node's own root is the lowest live key; seconds taken."""
        try:
            return await wait_until("root agreement", self.agreed, timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; {self.disagreeing()}") from None

    def disagreeing(self) -> str:
        """The live nodes whose own root is not the lowest live key, for failure messages."""
        low = self.lowest_alive()
        out = []
        for i in sorted(self.alive):
            root = self.root_of(i)
            if root != low:
                kind = "real" if self.is_real(i) else "axl"
                line = f"{kind} {i} ({self.keys[i].hex()[:8]}): root {root.hex()[:8] if root else None}"
                if i in self.axl:
                    line += " " + self._axl_state(i)
                out.append(line)
        return f"lowest {low.hex()[:8]}; " + ", ".join(out)

    def _axl_state(self, i: int) -> str:
        """An axl node's tree state towards its peers (for failure messages)."""
        router = self.axl[i].router
        tree = router.tree
        me = tree.infos.get(router.public_key)
        parts = [f"parent {me.parent.hex()[:8] if me else None} flags {tree.refresh, tree.do_root1, tree.do_root2}"]
        for key in router.peers.by_key:
            info = tree.infos.get(key)
            proot, dists = tree.root_and_dists(key)
            parts.append(
                f"[peer {self.keys.index(key) if key in self.keys else '?'} "
                f"parent {info.parent.hex()[:8] if info else None} "
                f"root {proot.hex()[:8] if proot else None} via-us {router.public_key in dists} "
                f"res {key in tree.responses}]"
            )
        return " ".join(parts)

    def connected_without(self, removed: Iterable[int]) -> bool:
        gone = set(removed)
        left = self.alive - gone
        if not left:
            return False
        return self._reachable(next(iter(left)), gone | (set(range(len(self.keys))) - self.alive)) == left

    def _reachable(self, start: int, without: set[int]) -> set[int]:
        seen, todo = {start}, [start]
        while todo:
            i = todo.pop()
            for j in self.neighbours(i):
                if j not in without and j not in seen:
                    seen.add(j)
                    todo.append(j)
        return seen

    def churn_victims(self, fraction: float = 0.25) -> list[int]:
        """The root plus C{fraction} of the live real nodes, leaving the graph connected."""
        root = self.keys.index(self.lowest_alive())
        if not self.connected_without([root]):
            raise AssertionError("removing the root splits the graph")
        reals = [i for i in sorted(self.alive) if self.is_real(i) and i != root]
        count = max(1, int(len(reals) * fraction))
        for _ in range(100):
            self.rng.shuffle(reals)
            victims = [root]
            for i in reals:
                if len(victims) > count:
                    break
                if self.connected_without(victims + [i]):
                    victims.append(i)
            if len(victims) > count:
                return victims
        raise AssertionError("no churn keeps the graph connected")

    # -- traffic ---------------------------------------------------------------------------

    async def send_all_pairs(self, concurrency: int = 8) -> dict[tuple[int, int], tuple[int, float]]:
        """C{/send} between every ordered pair of live axl nodes: C{(status, seconds)} each."""
        pairs = [(a, b) for a in self.axl for b in self.axl if a != b]
        sem = DeferredSemaphore(concurrency)
        results: dict[tuple[int, int], tuple[int, float]] = {}

        def one(a: int, b: int) -> None:
            start = time.monotonic()
            status = http(
                "POST",
                f"http://127.0.0.1:{self.api(a)}/send",
                b"hello %d -> %d" % (a, b),
                {"X-Destination-Peer-Id": self.keys[b].hex()},
            )[0]
            results[(a, b)] = (status, time.monotonic() - start)

        await DeferredList(
            [sem.run(deferToThread, one, a, b) for a, b in pairs], consumeErrors=False
        )
        return results

    async def remote_get_self(
        self, sources: Iterable[int] | None = None, concurrency: int = 8
    ) -> dict[tuple[int, int], tuple[str, float]]:
        """
        C{debug_remoteGetSelf} from each real node in C{sources} (default: all live ones) to
        every live axl node: C{"ok"} or the error, and seconds, per (real, axl) pair.
        """
        srcs = [i for i in (sources if sources is not None else self.real) if i in self.real]
        sem = DeferredSemaphore(concurrency)
        results: dict[tuple[int, int], tuple[str, float]] = {}

        def one(r: int, a: int) -> None:
            start = time.monotonic()
            try:
                answer = self.real[r].admin("debug_remoteGetSelf", key=self.keys[a].hex())
                got = list(answer.values())[0]["key"]
                outcome = "ok" if got == self.keys[a].hex() else f"wrong key {got}"
            except (OSError, AdminError) as e:
                outcome = str(e)
            results[(r, a)] = (outcome, time.monotonic() - start)

        await DeferredList([sem.run(deferToThread, one, r, a) for r in srcs for a in self.axl])
        return results

    async def settle_filters(self) -> None:
        """Two ticks: a Go node sends its lookup once, along filters it refreshes per tick."""
        await deferLater(reactor, 2 * TICK_S + 0.2, lambda: None)

    def depth(self, i: int) -> int:
        """Node C{i}'s depth in the tree (its own parent chain; 0 if it cannot be read)."""
        try:
            if i in self.axl:
                return len(self.axl[i].router.coords())
            entries = {e["key"]: e["parent"] for e in self.real[i].admin("getTree")["tree"]}
        except (OSError, AdminError, KeyError):
            return 0
        key, seen = self.keys[i].hex(), set()
        while key in entries and entries[key] != key and key not in seen:
            seen.add(key)
            key = entries[key]
        return len(seen)

    async def settle_filters_fully(self) -> float:
        """
        Wait until the real nodes' filters can hold every key: a key moves one hop per tick
        through a Go node, up to the root and down again, so 2 x the deepest node's depth + 1
        ticks after the roots agree (a Go node's one-shot lookup sent earlier can die at a node
        whose filters do not hold the key yet). Returns the seconds waited.
        """
        deepest = max(await deferToThread(lambda: [self.depth(i) for i in sorted(self.alive)]))
        wait = (2 * deepest + 1) * TICK_S
        await deferLater(reactor, wait, lambda: None)
        return wait
