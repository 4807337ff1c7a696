"""
Helpers of the whole-node benchmarks: free ports, C{twistd axl} node processes (optionally under
cProfile), their RSS, and a minimal keep-alive HTTP/1.1 client cheap enough that the benchmark
measures the nodes rather than itself.
"""

from __future__ import annotations

import json
import os
import pstats
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.common import ROOT
from tests.test_e2e_twistd import free_port

__all__ = ["Node", "HTTP", "free_port", "start_node", "stop_nodes", "print_profiles", "rss_mb", "tls_client", "peer_link"]

TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
#: twistd under cProfile counting CPU time (twistd's own --profiler counts wall time, which on a
#: loaded machine charges other processes' time to whatever call was preempted, mostly send()).
PROFILED_TWISTD = """
import cProfile, sys, time
from twisted.scripts.twistd import run
path = sys.argv.pop(1)
sys.argv[0] = 'twistd'
profile = cProfile.Profile(time.process_time)
profile.enable()
try:
    run()
finally:
    profile.disable()
    profile.dump_stats(path)
"""
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Node:
    """A running C{twistd axl} process."""

    name: str
    proc: subprocess.Popen[bytes]
    api: int
    profile: str | None

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api}{path}"


def rss_mb(pid: int) -> float:
    """Process C{pid}'s resident set, in MB (MiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tls_client(port: int, source: tuple[str, int] | None = None, timeout: float = 5.0) -> ssl.SSLSocket:
    """A TLS connection to a node's C{tls://127.0.0.1:port} listener (no certificate check)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=source)
    return ctx.wrap_socket(raw)


def peer_link(port: int, meta: bytes, source: tuple[str, int] | None = None, timeout: float = 5.0) -> ssl.SSLSocket:
    """
    A TLS peer link to a node's C{tls://127.0.0.1:port} listener (no certificate check, as
    Yggdrasil) whose meta handshake is done: C{meta} is sent, the node's read (raises if the node
    closes first).
    """
    from axl.link.meta import META_SIZE

    sock = tls_client(port, source, timeout)
    sock.sendall(meta)
    got = b""
    while len(got) < META_SIZE:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        got += chunk
    return sock


def launch_node(workdir: str, name: str, config: dict[str, Any], profile: str | None = None) -> Node:
    """Start C{twistd -n axl --config} (with C{profile}: under cProfile, stats to C{profile/name.prof})."""
    api = free_port()
    path = os.path.join(workdir, f"{name}.json")
    with open(path, "w") as f:
        json.dump({**config, "api_port": api}, f)
    env = {**os.environ, "PYTHONPATH": ROOT}
    prof = None
    program = [TWISTD]
    if profile:
        os.makedirs(profile, exist_ok=True)
        prof = os.path.join(os.path.abspath(profile), f"{name}.prof")
        program = [PROFILED_TWISTD, prof]
    with open(os.path.join(workdir, f"{name}.log"), "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", *program, "-n", "--pidfile=", "axl", "--config", path],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Node(name, proc, api, prof)


def wait_ready(workdir: str, node: Node, timeout: float = 60.0) -> None:
    """Wait until the node's bridge answers C{/topology}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            break
        try:
            with HTTP(node.api) as http:
                if http.request("GET", "/topology")[0] == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"node {node.name} did not start; see {workdir}/{node.name}.log")


def start_node(workdir: str, name: str, config: dict[str, Any], profile: str | None = None) -> Node:
    node = launch_node(workdir, name, config, profile)
    wait_ready(workdir, node)
    return node


def stop_nodes(nodes: list[Node]) -> None:
    """SIGTERM each (a profiled node writes its stats on the way out), then wait; kill stragglers."""
    for n in nodes:
        if n.proc.poll() is None:
            n.proc.send_signal(signal.SIGTERM)
    for n in nodes:
        try:
            n.proc.wait(20)
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()


def print_profiles(nodes: list[Node], lines: int = 25) -> None:
    """The top of each node's profile by own time (call after L{stop_nodes})."""
    for n in nodes:
        if n.profile and os.path.exists(n.profile):
            print(f"==== cProfile of node {n.name} ({n.profile}), CPU time, by own time", flush=True)
            stats = pstats.Stats(n.profile)
            stats.sort_stats("tottime").print_stats(lines)
            sys.stdout.flush()


class HTTP:
    """
    One keep-alive HTTP/1.1 connection to 127.0.0.1:C{port}, blocking. Only what the bridge
    answers is supported: responses with a C{Content-Length} (or none, for 204).
    """

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def __enter__(self) -> HTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = bytearray()
        return self.sock

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request: C{(status, headers in lower case, body)}."""
        sock = self._connect()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        data = head.encode("latin-1") + b"\r\n"
        if len(body) < 65536:
            sock.sendall(data + body)
        else:
            sock.sendall(data)
            sock.sendall(body)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill(sock)
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            content = self._chunked(sock)
        else:
            length = int(fields.get("content-length", "0"))
            while len(self.buf) < length:
                self._fill(sock)
            content = bytes(self.buf[:length])
            del self.buf[:length]
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, fields, content

    def _chunked(self, sock: socket.socket) -> bytes:
        parts = []
        while True:
            while (end := self.buf.find(b"\r\n")) < 0:
                self._fill(sock)
            size = int(bytes(self.buf[:end]).split(b";")[0], 16)
            del self.buf[: end + 2]
            while len(self.buf) < size + 2:
                self._fill(sock)
            parts.append(bytes(self.buf[:size]))
            del self.buf[: size + 2]
            if size == 0:
                return b"".join(parts)

    def _fill(self, sock: socket.socket) -> None:
        chunk = sock.recv(1 << 20)
        if not chunk:
            self.close()
            raise ConnectionError("the bridge closed the connection")
        self.buf += chunk


def start_node_process(workdir: str, name: str, config: dict[str, Any]) -> tuple[subprocess.Popen[bytes], int]:
    """L{start_node} for scripts that keep bare processes: C{(process, api port)}."""
    node = start_node(workdir, name, config)
    return node.proc, node.api


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate C{procs} (nodes or helpers), then kill those still running after 10 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for_route(api_x: int, api_y: int, timeout: float = 60.0) -> tuple[str, str, str, dict[str, str]]:
    """
    Wait until a probe C{/send} from bridge C{api_x} reaches C{api_y}'s C{/recv}. Returns Y's
    key, the C{/send} and C{/recv} URLs and the destination header.
    """
    with HTTP(api_x) as cx, HTTP(api_y) as cy:
        key_y = json.loads(cy.request("GET", "/topology")[2])["our_public_key"]
        dest = {"X-Destination-Peer-Id": key_y}
        deadline = time.monotonic() + timeout
        while cx.request("POST", "/send", b"probe", dest)[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit("no route X->Y")
            time.sleep(0.5)
        assert cy.request("GET", "/recv?wait=30")[2] == b"probe"
    return key_y, f"http://127.0.0.1:{api_x}/send", f"http://127.0.0.1:{api_y}/recv?wait=30", dest
