"""
The whole-node benchmark: three twistd nodes on loopback, X -> relay -> Y (the relay listens; X
and Y peer to it), a fake MCP router behind Y, and a client (this process) that talks to the
bridges over keep-alive HTTP connections (L{bench.nodes.HTTP}).

 - first message: the first C{/send} X->Y once the spanning tree has converged (the three
   nodes see one root): path lookup, session handshake and overlay TCP connect, until answered 200;
 - latency: a 100-byte C{/send} on X until Y's C{/recv} returns it, one at a time (p50, p95);
 - MCP: C{/mcp} round trips from X to Y's fake service (p50);
 - bulk: 1 MiB C{/send}s X->Y, 8 in flight, while Y's C{/recv} is drained, until all are there;
   then each node's RSS;
 - rate: 8 concurrent senders, each sending 1 KiB messages one after another (a C{/send} waits
   for its 200), while one client drains Y's C{/recv}; every message is checked to arrive once
   and in order per sender. Two rounds; the RSS growth between them shows whether anything
   grows with the number of messages.

C{AXL_BENCH_PHASES=bulk,rate} (any of first, latency, mcp, bulk, rate) runs only those phases,
e.g. to profile one of them.

With C{--profile DIR} each node runs under cProfile (twistd C{--profiler=cprofile}); the stats
go to C{DIR/<node>.prof} and their top is printed at the end.

Run: python bench/bench_bridge.py [--quick] [--profile DIR]   (or: python -m bench --only bridge)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Figure, Options, benchmark, run_standalone  # noqa: E402
from bench.nodes import HTTP, Node, free_port, launch_node, print_profiles, stop_nodes, wait_ready  # noqa: E402

SENDERS = 8

ROUTER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one write per response, no Nagle/delayed-ACK stalls
    wbufsize = 65536
    def log_message(self, *a): pass
    def do_POST(self):
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"response": {"jsonrpc": "2.0", "id": data["request"].get("id"), "result": {}}, "error": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)]


def root(http: HTTP) -> str | None:
    """The root of the spanning tree a node sees (None while it sees several)."""
    tree = json.loads(http.request("GET", "/topology")[2])["tree"]
    roots = {e["public_key"] for e in tree if e["parent"] == e["public_key"]}
    return roots.pop() if len(roots) == 1 else None


def run_threads(targets: list[threading.Thread]) -> None:
    for t in targets:
        t.start()
    for t in targets:
        t.join()


class Drainer(threading.Thread):
    """Takes C{count} messages from a node's C{/recv}, handing each to C{check}."""

    def __init__(self, api: int, count: int, check=None) -> None:
        super().__init__(daemon=True)
        self.api, self.count, self.check = api, count, check
        self.bytes = 0
        self.error: BaseException | None = None
        self.done_at = 0.0

    def run(self) -> None:
        try:
            with HTTP(self.api) as http:
                got = 0
                while got < self.count:
                    code, _, body = http.request("GET", "/recv?wait=30")
                    if code == 200:
                        got += 1
                        self.bytes += len(body)
                        if self.check is not None:
                            self.check(body)
                    elif code != 204:
                        raise RuntimeError(f"/recv answered {code}: {body!r}")
            self.done_at = time.perf_counter()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def send_many(api: int, dest: dict[str, str], payloads, errors: list[BaseException]) -> None:
    """POST each payload to C{/send}, one after another."""
    try:
        with HTTP(api) as http:
            for payload in payloads:
                code, _, body = http.request("POST", "/send", payload, dest)
                if code != 200:
                    raise RuntimeError(f"/send answered {code}: {body!r}")
    except BaseException as e:  # noqa: BLE001
        errors.append(e)


def rate_round(x: Node, y: Node, dest: dict[str, str], per_sender: int) -> float:
    """8 concurrent senders of 1 KiB messages; checks once and in order per sender; msgs/s."""
    next_seq = [0] * SENDERS
    problems: list[str] = []

    def check(body: bytes) -> None:
        sender, seq = int(body[:2]), int(body[2:10])
        if seq != next_seq[sender]:
            problems.append(f"sender {sender}: got #{seq}, expected #{next_seq[sender]}")
        next_seq[sender] = seq + 1

    drainer = Drainer(y.api, SENDERS * per_sender, check)
    errors: list[BaseException] = []
    senders = [
        threading.Thread(target=send_many, args=(
            x.api, dest, [b"%02d%08d" % (s, i) + b"." * 1014 for i in range(per_sender)], errors))
        for s in range(SENDERS)
    ]  # fmt: skip
    start = time.perf_counter()
    drainer.start()
    run_threads(senders)
    drainer.join(120)
    if errors:
        raise errors[0]
    if drainer.error is not None or drainer.is_alive():
        raise RuntimeError(f"draining /recv failed: {drainer.error or 'timed out'}")
    if problems:
        raise RuntimeError(f"messages lost, repeated or out of order: {problems[:5]}")
    if next_seq != [per_sender] * SENDERS:
        raise RuntimeError(f"messages missing: {next_seq}")
    return SENDERS * per_sender / (drainer.done_at - start)


class Mesh:
    """The three nodes, their clients and the sizes of this run."""

    def __init__(self, relay: Node, x: Node, y: Node, quick: bool) -> None:
        self.relay, self.x, self.y = relay, x, y
        self.nodes = [relay, x, y]
        self.cx, self.cy, self.crelay = HTTP(x.api), HTTP(y.api), HTTP(relay.api)
        self.key_y = json.loads(self.cy.request("GET", "/topology")[2])["our_public_key"]
        self.dest = {"X-Destination-Peer-Id": self.key_y}
        self.n_latency, self.n_mcp, self.n_bulk, self.per_sender = (
            (50, 30, 16, 100) if quick else (300, 200, 64, 500))

    def cpu(self) -> float:
        return sum(n.cpu_seconds() for n in self.nodes)

    def cpu_each(self) -> dict[str, float]:
        return {n.name: n.cpu_seconds() for n in self.nodes}

    @staticmethod
    def cpu_split(before: dict[str, float], after: dict[str, float], per: float, unit: str) -> str:
        return ", ".join(f"{k} {(after[k] - before[k]) / per:.0f} {unit}" for k in before)

    def converge(self, log: Callable[[str], None], timeout: float = 15.0) -> None:
        """
        Wait until the three nodes agree on one root of the spanning tree; after C{timeout}
        seconds carry on (the first message then waits for the rest), saying so.
        """
        deadline = time.monotonic() + timeout
        while len({root(c) for c in (self.cx, self.cy, self.crelay)} - {None}) != 1 or root(self.cx) is None:
            if time.monotonic() > deadline:
                log(f"the nodes did not agree on a root within {timeout:g} s: "
                    + ", ".join(str(root(c))[:8] for c in (self.cx, self.cy, self.crelay)))
                return
            time.sleep(0.05)

    def close(self) -> None:
        for c in (self.cx, self.cy, self.crelay):
            c.close()


def first_message(m: Mesh, opts: Options) -> list[Figure]:
    """The first /send X->Y (retried while it fails, which it should not once converged)."""
    attempts = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 60
    while True:
        attempts += 1
        code, _, body = m.cx.request("POST", "/send", b"first", m.dest)
        if code == 200:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no route X->Y: {code} {body!r}")
        time.sleep(0.05)
    first = (time.perf_counter() - start) * 1000
    assert m.cy.request("GET", "/recv?wait=30")[2] == b"first"
    opts.log(f"first message: {first:.1f} ms, {attempts} attempt(s)")
    return [Figure("bridge.first_send", "first /send to a new peer after convergence (lookup, session, TCP connect)",
                   first, "ms", better="lower")]


def latency(m: Mesh, opts: Options) -> list[Figure]:
    small = b"x" * 100
    lat = []
    for _ in range(m.n_latency):
        t = time.perf_counter()
        assert m.cx.request("POST", "/send", small, m.dest)[0] == 200
        assert m.cy.request("GET", "/recv?wait=30")[2] == small
        lat.append((time.perf_counter() - t) * 1000)
    return [
        Figure("bridge.latency_p50", "100 B /send on X until Y's /recv returns it, p50",
               statistics.median(lat), "ms", better="lower", target=1.5),
        Figure("bridge.latency_p95", "100 B /send on X until Y's /recv returns it, p95",
               percentile(lat, 0.95), "ms", better="lower"),
    ]


def mcp(m: Mesh, opts: Options) -> list[Figure]:
    rpc = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    times = []
    for _ in range(m.n_mcp):
        t = time.perf_counter()
        code, _, body = m.cx.request("POST", f"/mcp/{m.key_y}/svc", rpc, {"Content-Type": "application/json"})
        assert code == 200, (code, body)
        times.append((time.perf_counter() - t) * 1000)
    return [Figure("bridge.mcp_p50", "/mcp round trip X → Y's MCP service, p50",
                   statistics.median(times), "ms", better="lower", target=4.0)]


def bulk(m: Mesh, opts: Options) -> list[Figure]:
    chunk = os.urandom(1024 * 1024)
    drainer = Drainer(m.y.api, m.n_bulk)
    errors: list[BaseException] = []
    senders = [threading.Thread(target=send_many, args=(m.x.api, m.dest, [chunk] * (m.n_bulk // SENDERS), errors))
               for _ in range(SENDERS)]
    cpu0, each0 = m.cpu(), m.cpu_each()
    t0 = time.perf_counter()
    drainer.start()
    run_threads(senders)
    drainer.join(120)
    if errors or drainer.error or drainer.bytes != m.n_bulk * len(chunk):
        raise RuntimeError(f"bulk failed: {errors or drainer.error}, {drainer.bytes} bytes")
    rate = m.n_bulk / (drainer.done_at - t0)
    cpu = (m.cpu() - cpu0) / m.n_bulk
    opts.log("bulk CPU per MiB: " + m.cpu_split(each0, m.cpu_each(), m.n_bulk / 1000, "ms"))
    rss = {n.name: n.rss_mb() for n in m.nodes}
    opts.log("RSS after bulk: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))
    return [
        Figure("bridge.bulk", f"bulk: {m.n_bulk} × 1 MiB /send X → Y, {SENDERS} in flight", rate, "MiB/s", target=100),
        Figure("bridge.bulk_cpu", "bulk: CPU time of the three nodes per MiB", cpu * 1000, "ms", better="lower"),
        Figure("bridge.rss_after_bulk", "largest node RSS after the bulk run",
               max(rss.values()), "MB", better="lower", target=70),
    ]


def rate(m: Mesh, opts: Options) -> list[Figure]:
    """Two rounds: the second also shows whether memory grows with the number of messages."""
    cpu0, each0 = m.cpu(), m.cpu_each()
    r1 = rate_round(m.x, m.y, m.dest, m.per_sender)
    before = {n.name: n.rss_mb() for n in m.nodes}
    r2 = rate_round(m.x, m.y, m.dest, m.per_sender)
    cpu = (m.cpu() - cpu0) / (2 * SENDERS * m.per_sender)
    opts.log("CPU per 1 KiB message: " + m.cpu_split(each0, m.cpu_each(), 2 * SENDERS * m.per_sender / 1e6, "µs"))
    growth = max(n.rss_mb() - before[n.name] for n in m.nodes)
    opts.log(f"rate rounds: {r1:.0f}, {r2:.0f} msgs/s; RSS growth in round 2: {growth:.2f} MB")
    return [
        Figure("bridge.rate_1k", f"1 KiB /send → /recv, {SENDERS} concurrent senders (each delivered once, in order)",
               (r1 + r2) / 2, "msgs/s", target=2000),
        Figure("bridge.rate_cpu", "1 KiB messages: CPU time of the three nodes per message",
               cpu * 1e6, "µs", better="lower"),
        Figure("bridge.rss_growth", f"largest node RSS growth over {SENDERS * m.per_sender} more 1 KiB messages",
               growth, "MB", better="lower"),
    ]


PHASES = {"first": first_message, "latency": latency, "mcp": mcp, "bulk": bulk, "rate": rate}


@benchmark("bridge", "three twistd nodes X → relay → Y on loopback, a client on X's and Y's bridges", profiles=True)
def measure(opts: Options) -> list[Figure]:
    phases = os.environ.get("AXL_BENCH_PHASES", ",".join(PHASES)).split(",")
    workdir = tempfile.mkdtemp(prefix="axl-bench-")
    nodes: list[Node] = []
    router = None
    figures: list[Figure] = []
    try:
        router_port = free_port()
        router = subprocess.Popen([sys.executable, "-c", ROUTER, str(router_port)])
        listen = f"tls://127.0.0.1:{free_port()}"
        nodes = [
            launch_node(workdir, "relay", {"Listen": [listen]}, opts.profile),
            launch_node(workdir, "x", {"Peers": [listen]}, opts.profile),
            launch_node(workdir, "y", {"Peers": [listen], "router_addr": "http://127.0.0.1",
                                       "router_port": router_port}, opts.profile),
        ]  # fmt: skip
        for n in nodes:
            wait_ready(workdir, n)
        m = Mesh(*nodes, quick=opts.quick)
        m.converge(opts.log)
        if "first" not in phases:
            first_message(m, opts)  # the path and session, untimed
        for name in phases:
            figures += PHASES[name](m, opts)
        m.close()
        shutil.rmtree(workdir)  # kept when something failed: the nodes' logs are there
    finally:
        stop_nodes(nodes)
        if router is not None:
            router.terminate()
            router.wait()
    if opts.profile:
        print_profiles(nodes)
    return figures


if __name__ == "__main__":
    run_standalone(measure)
