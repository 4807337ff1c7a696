# -*- test-case-name: tests.test_forward_interop -*-
"""
Forwards against a real Yggdrasil node with a TUN device. The test creates a network namespace
and runs C{yggdrasil} (0.5.14 and 0.5.12 from C{../shared/bin}) inside it with a real TUN; an
in-process axl node peers with it over a unix socket in a temp dir (unix sockets cross
namespaces). Then, inside the namespace, the kernel's TCP and UDP reach services our node
exposes with C{remote_tcp}/C{remote_udp}, and our C{local_tcp} reaches a kernel listener on
the real node's address.

Needs root, /dev/net/tun, iproute2 and the binaries; skipped otherwise. Every process is stopped
by PID, the namespace deleted. Real time, bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.server import Site

from axl.crypto.address import addr_for_key, format_address
from tests.inprocess import InProcessNodesTestCase
from tests.realnode import require
from tests.test_forward_e2e import Client, Echo, UDPEcho
from tests.vectors import identity

KERNEL_PORT = 8080

KERNEL_CLIENT = r"""
import socket, sys, time
proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.time() + 30
last = None
while time.time() < deadline:
    try:
        if proto == "tcp":
            s = socket.create_connection((addr, port), timeout=5)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            if data:
                print(data.split(b"\r\n\r\n", 1)[1].decode()); sys.exit(0)
        else:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.settimeout(1)
            s.sendto(b"ping over udp", (addr, port))
            data, src = s.recvfrom(65535)
            print(data.decode(), src[1]); sys.exit(0)
    except OSError as e:
        last = e
        time.sleep(0.3)
print("failed:", last); sys.exit(1)
"""

KERNEL_SERVER = r"""
import socket, sys
port = int(sys.argv[1])
ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("::", port)); ls.listen(4); ls.settimeout(60)
print("listening", flush=True)
s, peer = ls.accept()
s.sendall(b"hello from the kernel to " + peer[0].encode())
s.close()
"""


def _ip() -> str:
    return "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else (shutil.which("ip") or "ip")


class _Logged(ProcessProtocol):
    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data[-65536:]

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


class RealYggdrasilForwardTests(InProcessNodesTestCase):
    """Kernel TCP/UDP behind a real Yggdrasil TUN node <-> our forwards."""

    timeout = 120
    version = "0.5.14"

    def setUp(self) -> None:
        if sys.platform != "linux" or os.geteuid() != 0:
            raise self.skipTest("needs root on Linux")
        if not os.path.exists("/dev/net/tun") or shutil.which("ip") is None:
            raise self.skipTest("needs /dev/net/tun and iproute2")
        self.program = require("yggdrasil", self.version)
        self.tmp = tempfile.mkdtemp(prefix="axl-ygg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ns = f"axlfwd{os.getpid()}"
        try:
            subprocess.run([_ip(), "netns", "add", self.ns], check=True, capture_output=True)
        except (subprocess.CalledProcessError, OSError) as e:
            raise self.skipTest(f"cannot create a network namespace: {e}")
        self.addCleanup(subprocess.run, [_ip(), "netns", "del", self.ns], capture_output=True)
        subprocess.run([_ip(), "-n", self.ns, "link", "set", "lo", "up"], check=True)

    def start_yggdrasil(self) -> tuple[str, str]:
        """Run yggdrasil with a TUN in the namespace, listening on a unix socket; (socket, address)."""
        conf = json.loads(subprocess.run([self.program, "-genconf", "-json"], check=True,
                                         capture_output=True).stdout)  # fmt: skip
        sock = os.path.join(self.tmp, "ygg.sock")
        conf.update({"Listen": [f"unix://{sock}"], "Peers": [], "AdminListen": "none",
                     "MulticastInterfaces": [], "IfName": "axlygg0", "IfMTU": 65535})  # fmt: skip
        path = os.path.join(self.tmp, "ygg.json")
        with open(path, "w") as f:
            json.dump(conf, f)
        address = subprocess.run([self.program, "-useconffile", path, "-address"], check=True,
                                 capture_output=True, text=True).stdout.strip()  # fmt: skip
        proto = _Logged()
        process = reactor.spawnProcess(  # type: ignore[attr-defined]
            proto, _ip(), [_ip(), "netns", "exec", self.ns, self.program, "-useconffile", path, "-logto", "stdout"],
            env=dict(os.environ))

        def stop() -> Deferred[None]:
            if proto.ended.called:
                return proto.ended
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            killer = reactor.callLater(5, lambda: process.pid and os.kill(process.pid, signal.SIGKILL))  # type: ignore[attr-defined]
            proto.ended.addBoth(lambda r: killer.active() and killer.cancel())
            return proto.ended

        self.addCleanup(stop)
        self.ygg_log = proto.output
        return sock, address

    async def wait_socket(self, sock: str) -> None:
        for _ in range(100):
            if os.path.exists(sock):
                return
            await deferLater(reactor, 0.1, lambda: None)  # type: ignore[arg-type]
        self.fail(f"yggdrasil did not listen: {bytes(self.ygg_log)[-2000:]!r}")

    def netns(self, script: str, *args: str) -> Deferred[tuple[bytes, bytes, int]]:
        return getProcessOutputAndValue(_ip(), ["netns", "exec", self.ns, sys.executable, "-c", script, *args],
                                        env=dict(os.environ))  # fmt: skip

    def test_kernel_reaches_our_services_and_we_reach_the_kernel(self) -> Deferred[None]:
        """
        The kernel's TCP (a GET) and UDP (a datagram) reach a web server and a UDP echo that our
        node exposes with remote_tcp/remote_udp; our local_tcp reaches a kernel listener on the
        real node's address, which sees our node's address as the caller.
        """
        return ensureDeferred(self._scenario())

    async def _scenario(self) -> None:
        sock, ygg_address = self.start_yggdrasil()
        await self.wait_socket(sock)
        web = reactor.listenTCP(0, Site(Echo()), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(web.stopListening)
        udp = reactor.listenUDP(0, UDPEcho(), interface="127.0.0.1", maxPacketSize=65535)  # type: ignore[attr-defined]
        self.addCleanup(udp.stopListening)
        ours = format_address(addr_for_key(identity("A").public_key))
        server = self.netns(KERNEL_SERVER, str(KERNEL_PORT))
        node = self.start_node("A", {
            "Peers": [f"unix://{sock}"],
            "remote_tcp": [f"80:127.0.0.1:{web.getHost().port}"],
            "remote_udp": [f"5353:127.0.0.1:{udp.getHost().port}"],
            "local_tcp": [f"0:[{ygg_address}]:{KERNEL_PORT}"],
        })
        out, err, code = await self.netns(KERNEL_CLIENT, "tcp", ours, "80")
        self.assertEqual((code, out.strip()), (0, b"hello from A"), err + bytes(self.ygg_log)[-2000:])
        out, err, code = await self.netns(KERNEL_CLIENT, "udp", ours, "5353")
        self.assertEqual((code, out.strip()), (0, b"ping over udp 5353"), err)
        local_port = int(node.forwards.ports[0].getHost().port)  # type: ignore[attr-defined]
        client = Client()
        for _ in range(60):
            client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", local_port), Client())
            await client.closed
            if client.data:
                break
            await deferLater(reactor, 0.5, lambda: None)  # type: ignore[arg-type]
        self.assertEqual(bytes(client.data), b"hello from the kernel to " + ours.encode())
        out, err, code = await server
        self.assertEqual(code, 0, err)


class RealYggdrasil0512ForwardTests(RealYggdrasilForwardTests):
    """The same against yggdrasil 0.5.12 (the version AXL embeds)."""

    version = "0.5.12"


