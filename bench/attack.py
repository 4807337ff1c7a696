"""
The attack harness of issue 12: runs each attack against one twistd node on loopback, bounded in
time, and prints the node's RSS (before, peak, after), CPU seconds, log bytes written, and what a
legitimate client sees meanwhile and after (a 100-byte /send to the node's own key, p50 ms; a new
peer's link handshake).

Attacks (each at most --seconds, default 10):
  sigreq     a peer completes the handshake and streams 4-byte SigReq frames, reading replies
  handshake  one address opens silent TLS connections as fast as it can
  slowloris  200 bridge connections sending their head a byte a second
  idle       1000 idle bridge connections
  bigbody    a 100 MB Content-Length /send, then a chunked body streamed until cut
  deepjson   /mcp and /a2a bodies nested 948 deep; duplicate X-Destination-Peer-Id
  notify     /mcp notifications to an unreachable key as fast as possible
  bigsend    30 concurrent 16 MiB /send to an unreachable key (--send-mib N: N MiB)
  slowsend   30 concurrent 16 MiB /send to a peer node whose /recv nobody reads (--send-mib)
  recvfull   16 MiB /send to our own key until the /recv queue is full (nobody reads)
  slowbodies 120 clients each send all but the last byte of a 3 MiB (stored) /send body, then wait
  remotefull another node sends 16 MiB messages from 8 clients; nobody reads our /recv
  links      300 links from 150 loopback addresses, each a new key, kept up by keepalives
  pipeline   300 bridge connections pipelining GET /topology without reading responses

Run: python bench/attack.py [--seconds 10] [attack ...]     (loopback only; figures are noisy
on a shared machine)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from axl.client import request as http  # noqa: E402
from axl.crypto import Identity  # noqa: E402
from axl.link.framing import encode_frame  # noqa: E402
from axl.link.meta import encode_meta  # noqa: E402

from bench.nodes import free_port, peer_link, rss_mb, start_node, stop_all, tls_client  # noqa: E402

UNREACHABLE = "ab" * 32


class Node:
    def __init__(self, workdir: str, name: str = "target", config: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.link_port = free_port()
        node = start_node(
            workdir, name, {"Listen": [f"tls://127.0.0.1:{self.link_port}"], **(config or {})}
        )
        self.proc, self.api = node.proc, node.api
        self.log = os.path.join(workdir, f"{name}.log")
        self.receiver: Node | None = None  # where legit_p50 sends, when not to ourselves
        topo = json.loads(http("GET", self.url("/topology"))[2])
        self.key = topo["our_public_key"]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api}{path}"

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_size(self) -> int:
        return os.path.getsize(self.log)


#: The legitimate peer comes from another loopback address than the attackers (127.0.0.1).
LEGIT_SOURCE = ("127.0.0.2", 0)


def tls_link(port: int, timeout: float = 5.0, source: tuple[str, int] | None = None) -> ssl.SSLSocket:
    """A TLS connection to the node's peer listener (no certificate check, as Yggdrasil)."""
    return tls_client(port, source, timeout)


def peer_handshake(
    port: int, ident: Identity | None = None, source: tuple[str, int] | None = None
) -> ssl.SSLSocket:
    """A link whose meta handshake is done (raises on failure)."""
    return peer_link(port, encode_meta(ident or Identity(os.urandom(32))), source)


def legit_p50(node: Node, n: int = 20) -> float:
    """
    p50 ms of a 100-byte /send to the node's own key (then drained from /recv); while
    C{node.receiver} is set (an attack fills our own /recv queue on purpose), to that node.
    """
    times = []
    receiver = node.receiver or node
    for _ in range(n):
        t = time.monotonic()
        try:
            code = http("POST", node.url("/send"), b"x" * 100, {"X-Destination-Peer-Id": receiver.key},
                        timeout=10)[0]  # fmt: skip
        except OSError:
            code = 0
        if code == 200:
            times.append((time.monotonic() - t) * 1000)
    try:
        while http("GET", receiver.url("/recv"), timeout=10)[0] == 200:
            pass
    except OSError:
        pass
    return statistics.median(times) if times else float("nan")


def legit_peer(node: Node) -> str:
    try:
        t = time.monotonic()
        peer_handshake(node.link_port, source=LEGIT_SOURCE).close()
        return f"{(time.monotonic() - t) * 1000:.0f} ms"
    except OSError as e:
        return f"FAILED ({e})"


# -- attacks ---------------------------------------------------------------------------------


def attack_sigreq(node: Node, stop: threading.Event) -> str:
    sock = peer_handshake(node.link_port)
    got = [0]

    def reader() -> None:
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                got[0] += len(chunk)
        except OSError:
            return

    threading.Thread(target=reader, daemon=True).start()
    burst = encode_frame(2, b"\x01\x02") * 16384
    sent = 0
    try:
        while not stop.is_set():
            sock.sendall(burst)
            sent += len(burst)
    except OSError as e:
        return f"sent {sent // 4} SigReqs, read {got[0]} bytes; dropped: {e.__class__.__name__}"
    finally:
        sock.close()
    return f"sent {sent // 4} SigReqs, read {got[0]} bytes"


def attack_handshake(node: Node, stop: threading.Event) -> str:
    held: list[socket.socket] = []
    opened = refused = 0
    while not stop.is_set():
        try:
            held.append(socket.create_connection(("127.0.0.1", node.link_port), timeout=2))
            opened += 1
        except OSError:
            refused += 1
        if len(held) > 500:
            for s in held[:250]:
                s.close()
            del held[:250]
    peer = legit_peer(node)
    for s in held:
        s.close()
    return f"{opened} connections opened, {refused} failed; new peer during the attack: {peer}"


def attack_slowloris(node: Node, stop: threading.Event) -> str:
    socks = []
    for _ in range(200):
        try:
            s = socket.create_connection(("127.0.0.1", node.api), timeout=2)
            s.sendall(b"POST /send HTTP/1.1\r\n")
            socks.append(s)
        except OSError:
            pass
    closed = 0
    while not stop.is_set():
        for s in list(socks):
            try:
                s.sendall(b"X")
            except OSError:
                socks.remove(s)
                closed += 1
        stop.wait(1.0)
    for s in socks:
        s.close()
    return f"200 slow heads: {closed} cut by the node"


def attack_idle(node: Node, stop: threading.Event) -> str:
    socks = []
    refused = 0
    for _ in range(1000):
        try:
            socks.append(socket.create_connection(("127.0.0.1", node.api), timeout=2))
        except OSError:
            refused += 1
    stop.wait()
    alive = closed = 0
    for s in socks:
        s.settimeout(0.05)
        try:
            s.recv(100)  # b"" or a 408: the node closed it
            closed += 1
        except TimeoutError:
            alive += 1
        except OSError:
            closed += 1
        s.close()
    return f"1000 idle connections: {closed} closed by the node, {alive} still open, {refused} refused"


def attack_bigbody(node: Node, stop: threading.Event) -> str:
    s = socket.create_connection(("127.0.0.1", node.api), timeout=10)
    s.sendall(b"POST /send HTTP/1.1\r\nHost: x\r\nX-Destination-Peer-Id: " + node.key.encode()
              + b"\r\nContent-Length: 100000000\r\n\r\n")  # fmt: skip
    first = s.recv(200).split(b"\r\n")[0].decode()
    s.close()
    s = socket.create_connection(("127.0.0.1", node.api), timeout=10)
    s.sendall(b"POST /send HTTP/1.1\r\nHost: x\r\nX-Destination-Peer-Id: " + node.key.encode()
              + b"\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    chunk = b"100000\r\n" + b"a" * 0x100000 + b"\r\n"
    sent = 0
    try:
        while not stop.is_set() and sent < 1 << 30:
            s.sendall(chunk)
            sent += 0x100000
    except OSError:
        pass
    s.close()
    return f"100 MB declared: {first!r}; chunked: cut after {sent >> 20} MiB"


def attack_deepjson(node: Node, stop: threading.Event) -> str:
    deep = b"[" * 948 + b"]" * 948
    body = b'{"jsonrpc":"2.0","id":1,"method":"x","params":' + deep + b"}"
    mcp = http("POST", node.url(f"/mcp/{UNREACHABLE}/svc"), body)[0]
    a2a = http("POST", node.url(f"/a2a/{UNREACHABLE}"), body)[0]
    s = socket.create_connection(("127.0.0.1", node.api), timeout=10)
    s.sendall(b"POST /send HTTP/1.1\r\nHost: x\r\nX-Destination-Peer-Id: " + node.key.encode()
              + b"\r\nX-Destination-Peer-Id: " + UNREACHABLE.encode() + b"\r\nContent-Length: 2\r\n\r\nhi")  # fmt: skip
    dup = s.recv(200).split(b"\r\n")[0].decode()
    s.close()
    return f"/mcp {mcp}, /a2a {a2a}, duplicate header: {dup!r}"


def attack_notify(node: Node, stop: threading.Event) -> str:
    note = json.dumps({"jsonrpc": "2.0", "method": "notifications/x"}).encode()
    codes: dict[int, int] = {}

    def one() -> None:
        while not stop.is_set():
            try:
                code = http("POST", node.url(f"/mcp/{UNREACHABLE}/svc"), note, timeout=10)[0]
            except OSError:
                code = 0
            codes[code] = codes.get(code, 0) + 1

    with ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            pool.submit(one)
    return f"notifications by status: {dict(sorted(codes.items()))}"


#: the body size of bigsend and slowsend (--send-mib)
SEND_MIB = 16


def attack_bigsend(node: Node, stop: threading.Event) -> str:
    body = b"z" * (SEND_MIB << 20)

    def one() -> int:
        try:
            return http("POST", node.url("/send"), body, {"X-Destination-Peer-Id": UNREACHABLE},
                        timeout=60)[0]  # fmt: skip
        except OSError:
            return 0

    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(lambda _: one(), range(30)))
    return f"30 x {SEND_MIB} MiB to an unreachable key: {dict((c, codes.count(c)) for c in set(codes))}"


def attack_slowsend(node: Node, stop: threading.Event) -> str:
    """
    30 concurrent /send to a second node peered with the target whose /recv nobody reads: once
    its queue and windows are full the target's sends stall (and fail after send_timeout_secs).
    """
    sink = Node(node.workdir, "sink", {"Peers": [f"tls://127.0.0.1:{node.link_port}"]})
    try:
        dest = {"X-Destination-Peer-Id": sink.key}
        deadline = time.monotonic() + 60
        while http("POST", node.url("/send"), b"probe", dest, timeout=30)[0] != 200:
            if time.monotonic() > deadline:
                return "no route to the sink node"
            time.sleep(0.5)
        body = b"s" * (SEND_MIB << 20)

        def one() -> int:
            try:
                return http("POST", node.url("/send"), body, dest, timeout=90)[0]
            except OSError:
                return 0

        with ThreadPoolExecutor(30) as pool:
            codes = list(pool.map(lambda _: one(), range(30)))
        return f"30 x {SEND_MIB} MiB to a non-reading peer: {dict((c, codes.count(c)) for c in set(codes))}"
    finally:
        stop_all([sink.proc])


def send_until_stopped(via: Node, key: str, body: bytes, stop: threading.Event, senders: int = 8) -> list[int]:
    """C{senders} clients /send C{body} to C{key} through C{via}'s bridge until C{stop}: the statuses."""
    codes: list[int] = []

    def one() -> None:
        while not stop.is_set():
            try:
                codes.append(http("POST", via.url("/send"), body, {"X-Destination-Peer-Id": key},
                                  timeout=40)[0])  # fmt: skip
            except OSError:
                codes.append(0)

    with ThreadPoolExecutor(senders) as pool:
        for _ in range(senders):
            pool.submit(one)
    return codes


def attack_recvfull(node: Node, stop: threading.Event) -> str:
    codes = send_until_stopped(node, node.key, b"q" * (16 << 20), stop)
    drained = 0
    while http("GET", node.url("/recv"), timeout=30)[0] == 200:
        drained += 1
    return f"/send statuses {dict((c, codes.count(c)) for c in set(codes))}; {drained} drained after"


def attack_slowbodies(node: Node, stop: threading.Event) -> str:
    """
    120 clients each declare a 3 MiB /send body (stored, not streamed: under 4 MiB), send all
    but its last byte, and wait.
    """
    body = b"s" * ((3 << 20) - 1)
    head = (b"POST /send HTTP/1.1\r\nHost: x\r\nX-Destination-Peer-Id: " + node.key.encode()
            + b"\r\nContent-Length: " + str(len(body) + 1).encode() + b"\r\n\r\n")  # fmt: skip
    codes: dict[str, int] = {}
    socks: list[socket.socket] = []

    def one() -> None:
        try:
            s = socket.create_connection(("127.0.0.1", node.api), timeout=30)
            socks.append(s)
            s.sendall(head)
            s.settimeout(0.5)
            view = memoryview(body)
            while view and not stop.is_set():
                try:
                    view = view[s.send(view[: 1 << 20]):]
                except TimeoutError:
                    continue
            s.settimeout(2)
            try:
                line = s.recv(100).split(b"\r\n")[0].decode() or "closed"
            except TimeoutError:
                line = "held (no answer yet)"
        except OSError as e:
            line = e.__class__.__name__
        codes[line] = codes.get(line, 0) + 1

    with ThreadPoolExecutor(120) as pool:
        for _ in range(120):
            pool.submit(one)
        stop.wait()
        for s in socks:
            s.close()
    return f"120 x 3 MiB bodies held open: {codes}"


def attack_remotefull(node: Node, stop: threading.Event) -> str:
    """
    Another node peered with the target sends 16 MiB messages to it from 8 clients, as fast as
    it can, while nobody reads the target's /recv: the target's port-7001 listener, /recv queue
    and overlay TCP hold what their budgets allow, and the sender waits.
    """
    attacker = Node(node.workdir, "attacker", {"Peers": [f"tls://127.0.0.1:{node.link_port}"],
                                              "bridge_max_inflight_bytes": 1 << 30})
    codes: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the route: a small message gets through
            try:
                if http("POST", attacker.url("/send"), b"hi", {"X-Destination-Peer-Id": node.key},
                        timeout=5)[0] == 200:  # fmt: skip
                    break
            except OSError:
                pass
            time.sleep(0.5)
        node.receiver = attacker  # our own /recv is being filled: measure our /send to it
        codes = send_until_stopped(attacker, node.key, b"r" * (16 << 20), stop)
        peak = rss_mb(node.proc.pid)
        drained = 0
        while http("GET", node.url("/recv"), timeout=30)[0] == 200:
            drained += 1
    finally:
        node.receiver = None
        stop_all([attacker.proc])
    return (f"/send statuses at the attacker {dict((c, codes.count(c)) for c in set(codes))}; "
            f"{drained} drained after; RSS with our queue full {peak:.0f} MB")


def attack_links(node: Node, stop: threading.Event) -> str:
    """
    Links from 150 loopback addresses (two each, a new key per link) that complete the handshake
    and then only send keepalives: what the node holds per idle link, and the inbound cap.
    """
    keepalive = encode_frame(1)
    socks: list[ssl.SSLSocket] = []
    refused = 0
    for n in range(150):
        for _ in range(2):
            if stop.is_set():
                break
            try:
                s = peer_handshake(node.link_port, source=(f"127.0.{1 + n // 250}.{3 + n % 250}", 0))
                s.setblocking(False)
                socks.append(s)
            except OSError:
                refused += 1
    while not stop.is_set():
        for s in list(socks):
            try:
                s.send(keepalive)
                while s.recv(65536):
                    pass
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
            except OSError:
                socks.remove(s)
        stop.wait(1.0)
    up = len(socks)
    for s in socks:
        s.close()
    return f"{up} links up at the end, {refused} handshakes refused"


def attack_pipeline(node: Node, stop: threading.Event) -> str:
    """
    As many bridge connections as the bridge takes, each writing pipelined GET /topology
    requests as fast as it can and never reading a response: what a connection holds at worst.
    """
    request = b"GET /topology HTTP/1.1\r\nHost: x\r\n\r\n" * 256
    socks: list[socket.socket] = []
    for _ in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", node.api), timeout=2)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            break
    written = 0
    while not stop.is_set():
        progress = False
        for s in list(socks):
            try:
                written += s.send(request)
                progress = True
            except BlockingIOError:
                pass
            except OSError:
                socks.remove(s)
        if not progress:
            stop.wait(0.2)
    open_ = len(socks)
    for s in socks:
        s.close()
    return f"{open_} connections still open, {written >> 20} MiB of requests written"


ATTACKS: dict[str, Callable[[Node, threading.Event], str]] = {
    "sigreq": attack_sigreq,
    "handshake": attack_handshake,
    "slowloris": attack_slowloris,
    "idle": attack_idle,
    "bigbody": attack_bigbody,
    "deepjson": attack_deepjson,
    "notify": attack_notify,
    "bigsend": attack_bigsend,
    "slowsend": attack_slowsend,
    "recvfull": attack_recvfull,
    "slowbodies": attack_slowbodies,
    "remotefull": attack_remotefull,
    "links": attack_links,
    "pipeline": attack_pipeline,
}


def run(node: Node, name: str, seconds: float) -> dict[str, Any]:
    rss0, cpu0, log0 = rss_mb(node.proc.pid), node.cpu(), node.log_size()
    peak = [rss0]
    stop = threading.Event()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(node.proc.pid))
            done.wait(0.2)

    threading.Thread(target=sample, daemon=True).start()
    during: list[float] = []

    def legit() -> None:
        while not stop.is_set():
            during.append(legit_p50(node, 5))
            stop.wait(1.0)

    threading.Thread(target=legit, daemon=True).start()
    # the bridge's head deadline is 10 s: hold those attacks long enough to see it act
    timer = threading.Timer(max(seconds, 15.0) if name in ("slowloris", "idle") else seconds, stop.set)
    timer.start()
    t0 = time.monotonic()
    try:
        note = ATTACKS[name](node, stop)
    except Exception as e:  # noqa: BLE001 - a report line, not a crash
        note = f"attack failed: {e!r}"
    stop.set()
    timer.cancel()
    elapsed = time.monotonic() - t0
    time.sleep(1.0)
    after = legit_p50(node)
    done.set()
    return {
        "attack": name,
        "secs": elapsed,
        "rss": (rss0, peak[0], rss_mb(node.proc.pid)),
        "cpu": node.cpu() - cpu0,
        "log": node.log_size() - log0,
        "during": statistics.median(during) if during else float("nan"),
        "after": after,
        "peer": legit_peer(node),
        "note": note,
        "alive": node.proc.poll() is None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--send-mib", type=int, default=16, help="body size of bigsend and slowsend")
    parser.add_argument("attacks", nargs="*", help=", ".join(ATTACKS))
    args = parser.parse_args()
    global SEND_MIB
    SEND_MIB = args.send_mib
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    args.attacks = args.attacks or list(ATTACKS)
    workdir = tempfile.mkdtemp(prefix="axl-attack-")
    node = Node(workdir)
    try:
        print(f"node pid {node.proc.pid}, idle RSS {rss_mb(node.proc.pid):.0f} MB, "
              f"idle /send p50 {legit_p50(node):.1f} ms")  # fmt: skip
        print(f"{'attack':10} {'s':>4} {'RSS MB before/peak/after':>26} {'CPU s':>6} "
              f"{'log KB':>7} {'p50 ms during/after':>20}  new peer  notes")  # fmt: skip
        for name in args.attacks:
            r = run(node, name, args.seconds)
            rss = "{:.0f} / {:.0f} / {:.0f}".format(*r["rss"])
            print(f"{name:10} {r['secs']:4.0f} {rss:>26} {r['cpu']:6.1f} {r['log'] / 1024:7.1f} "
                  f"{r['during']:9.1f} / {r['after']:<8.1f}  {r['peer']:8}  {r['note']}"
                  + ("" if r["alive"] else "  NODE DIED"), flush=True)  # fmt: skip
            if not r["alive"]:
                break
    finally:
        stop_all([node.proc])
    print(f"logs in {workdir}")


if __name__ == "__main__":
    main()
