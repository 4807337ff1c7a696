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
  bigsend    30 concurrent 16 MiB /send to an unreachable key (--send-mib)
  slowsend   30 concurrent 16 MiB /send to a peer node whose /recv nobody reads (--send-mib)
  recvfull   16 MiB /send to our own key until the /recv queue is full (nobody reads)

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
import subprocess
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
from axl.link.meta import META_SIZE, encode_meta  # noqa: E402

from bench.nodes import free_port, rss_mb, stop_all  # noqa: E402
from bench.nodes import start_node_process as start_node  # noqa: E402

UNREACHABLE = "ab" * 32


class Node:
    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.link_port = free_port()
        self.proc, self.api = start_node(
            workdir, "target", {"Listen": [f"tls://127.0.0.1:{self.link_port}"]}
        )
        self.log = os.path.join(workdir, "target.log")
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
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=source)
    return ctx.wrap_socket(raw)


def peer_handshake(
    port: int, ident: Identity | None = None, source: tuple[str, int] | None = None
) -> ssl.SSLSocket:
    """A link whose meta handshake is done (raises on failure)."""
    sock = tls_link(port, source=source)
    sock.sendall(encode_meta(ident or Identity(os.urandom(32))))
    data = b""
    while len(data) < META_SIZE:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    return sock


def legit_p50(node: Node, n: int = 20) -> float:
    """p50 ms of a 100-byte /send to the node's own key (then drained from /recv)."""
    times = []
    for _ in range(n):
        t = time.monotonic()
        try:
            code = http("POST", node.url("/send"), b"x" * 100, {"X-Destination-Peer-Id": node.key},
                        timeout=10)[0]  # fmt: skip
        except OSError:
            code = 0
        if code == 200:
            times.append((time.monotonic() - t) * 1000)
    try:
        while http("GET", node.url("/recv"), timeout=10)[0] == 200:
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
    A second node peers with the target; nobody reads its /recv, so once its queue and windows
    are full the target's sends stall (and time out after send_timeout_secs).
    """
    sink_proc, sink_api = start_node(
        node.workdir, "sink", {"Peers": [f"tls://127.0.0.1:{node.link_port}"]}
    )
    try:
        sink = json.loads(http("GET", f"http://127.0.0.1:{sink_api}/topology")[2])["our_public_key"]
        dest = {"X-Destination-Peer-Id": sink}
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
        stop_all([sink_proc])


def attack_recvfull(node: Node, stop: threading.Event) -> str:
    body = b"q" * (16 << 20)
    codes: list[int] = []

    def one() -> None:
        while not stop.is_set():
            try:
                codes.append(http("POST", node.url("/send"), body,
                                  {"X-Destination-Peer-Id": node.key}, timeout=40)[0])  # fmt: skip
            except OSError:
                codes.append(0)

    with ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            pool.submit(one)
    drained = 0
    while http("GET", node.url("/recv"), timeout=30)[0] == 200:
        drained += 1
    return f"/send statuses {dict((c, codes.count(c)) for c in set(codes))}; {drained} drained after"


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
