# -*- test-case-name: tests.test_forward_e2e -*-
"""
Bulk TCP through the SOCKS5 proxy between two twistd nodes on loopback, as a user's program
would see it. Node B runs C{--socks}; node A exposes a bulk server of this script with
C{--remote-tcp 80:127.0.0.1:P}; B peers to A over a TLS link. A plain kernel socket connects
to B's proxy, CONNECTs to C{<A's key>.pk.ygg:80}, then uploads N MiB (the server counts them)
and, on a second connection, downloads N MiB. Reports MB/s of wall time for each direction.

Path of every byte: client socket -> B's SOCKS (kernel TCP) -> B's userspace TCP -> session
encryption -> TLS link -> A -> A's userspace TCP -> A's remote_tcp -> kernel TCP -> server.

    python bench/bench_socks.py [--size MiB] [--runs N] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from axl.crypto.keys import Identity  # noqa: E402
from bench.common import Figure, Options, benchmark  # noqa: E402
from bench.nodes import free_port, stop_all  # noqa: E402

TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
BLOCK = os.urandom(1 << 20)


def serve(listener: socket.socket) -> None:
    """Bulk server: 'U' = read until EOF and answer the count; 'D' + 8-byte N = send N bytes."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def handle(conn: socket.socket) -> None:
    with conn:
        mode = conn.recv(1)
        if mode == b"U":
            total = 0
            while chunk := conn.recv(1 << 20):
                total += len(chunk)
            conn.sendall(struct.pack("!Q", total))
        elif mode == b"D":
            want = struct.unpack("!Q", recv_exact(conn, 8))[0]
            sent = 0
            while sent < want:
                n = min(len(BLOCK), want - sent)
                conn.sendall(BLOCK[:n])
                sent += n


def recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed early")
        data += chunk
    return data


def start_node(tmp: str, name: str, config: dict[str, object], args: list[str],
               profile: str | None = None) -> tuple[subprocess.Popen[bytes], Identity]:
    seed = os.urandom(32)
    ident = Identity(seed)
    api = free_port()
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump({**config, "PrivateKey": (seed + ident.public_key).hex(), "api_port": api}, f)
    env = {**os.environ, "PYTHONPATH": ROOT}
    profiling = ["--profiler=cprofile", f"--profile={os.path.join(profile, name + '.prof')}", "--savestats"] if profile else []
    proc = subprocess.Popen([sys.executable, "-c", TWISTD, "-n", "--pidfile=", *profiling, "axl", "--config", path, *args],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for(proc, rf"Listening on 127\.0\.0\.1:{api}\b")
    return proc, ident


def wait_for(proc: subprocess.Popen[bytes], pattern: str, timeout: float = 60.0) -> None:
    out = b""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not re.search(pattern, out.decode("utf-8", "replace")):
            if time.monotonic() > deadline or not sel.select(deadline - time.monotonic()):
                raise SystemExit(f"node did not start:\n{out.decode()}")
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise SystemExit(f"node exited:\n{out.decode()}")
            out += chunk
    threading.Thread(target=drain, args=(proc,), daemon=True).start()


def drain(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    while proc.stdout.read(65536):
        pass


def socks_connect(port: int, key: bytes, dport: int, timeout: float = 30.0) -> socket.socket:
    """A kernel socket through B's proxy to <key>.pk.ygg:dport (retried while the mesh settles)."""
    name = key.hex().encode() + b".pk.ygg"
    deadline = time.monotonic() + timeout
    while True:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"\x05\x01\x00" + bytes((5, 1, 0, 3, len(name))) + name + struct.pack("!H", dport))
        reply = recv_exact(s, 2 + 22)
        if reply[3] == 0:
            return s
        s.close()
        if time.monotonic() > deadline:
            raise SystemExit(f"SOCKS CONNECT failed with reply {reply[3]}")
        time.sleep(0.2)


def upload(port: int, key: bytes, size: int) -> float:
    s = socks_connect(port, key, 80)
    start = time.perf_counter()
    s.sendall(b"U")
    sent = 0
    while sent < size:
        n = min(len(BLOCK), size - sent)
        s.sendall(BLOCK[:n])
        sent += n
    s.shutdown(socket.SHUT_WR)
    total = struct.unpack("!Q", recv_exact(s, 8))[0]
    elapsed = time.perf_counter() - start
    s.close()
    assert total == size, (total, size)
    return size / elapsed / 1e6


def download(port: int, key: bytes, size: int) -> float:
    s = socks_connect(port, key, 80)
    start = time.perf_counter()
    s.sendall(b"D" + struct.pack("!Q", size))
    got = 0
    while got < size:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    elapsed = time.perf_counter() - start
    s.close()
    assert got == size, (got, size)
    return size / elapsed / 1e6


def transfer(size_mib: int, runs: int, profile: str | None) -> list[tuple[float, float]]:
    """C{runs} times an upload and a download of C{size_mib} MiB: their MB/s."""
    size = size_mib << 20
    results = []
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="axl-bench-socks-") as tmp:
        link = free_port()
        socks_port = free_port()
        procs = []
        try:
            a, a_id = start_node(tmp, "a", {"Listen": [f"tls://127.0.0.1:{link}"]},
                                 ["--remote-tcp", f"80:127.0.0.1:{listener.getsockname()[1]}"], profile)
            procs.append(a)
            b, _ = start_node(tmp, "b", {"Peers": [f"tls://127.0.0.1:{link}"]}, ["--socks", f"127.0.0.1:{socks_port}"],
                              profile)
            procs.append(b)
            socks_connect(socks_port, a_id.public_key, 80).close()  # warm up: path and session
            for run in range(runs):
                up = upload(socks_port, a_id.public_key, size)
                down = download(socks_port, a_id.public_key, size)
                print(f"run {run + 1}: {size_mib} MiB through SOCKS, B -> A {up:.0f} MB/s, A -> B {down:.0f} MB/s",
                      flush=True)
                results.append((up, down))
        finally:
            stop_all(procs)  # SIGTERM: profiled nodes write their stats on the way out
            listener.close()
    return results


@benchmark("socks", "bulk TCP through the SOCKS5 proxy between two twistd nodes (kernel sockets at both ends)",
           profiles=True)
def measure(opts: Options) -> list[Figure]:
    results = transfer(16 if opts.quick else 64, 1 if opts.quick else 2, opts.profile)
    return [
        Figure("socks.upload", "SOCKS bulk B → A (best run)", max(r[0] for r in results), "MB/s"),
        Figure("socks.download", "SOCKS bulk A → B (best run)", max(r[1] for r in results), "MB/s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--size", type=int, default=128, help="MiB per direction (default 128)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", metavar="DIR", help="run both nodes under cProfile, stats in DIR/{a,b}.prof")
    args = parser.parse_args()
    transfer(args.size, args.runs, args.profile)


if __name__ == "__main__":
    main()
