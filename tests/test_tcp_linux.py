# -*- test-case-name: tests.test_tcp_linux -*-
"""
Interop with the Linux kernel's TCP. A network namespace we create holds a TUN device whose
other end is our process: packets the kernel sends come out of the TUN fd into our stack, our
stack's packets are written to it (the TUN stands in for the overlay). A kernel socket in the
namespace (a helper Python process run with C{ip netns exec}) talks to our stack: handshake,
16 MiB both ways, close from either side.

Needs the permission to create a network namespace and a TUN device (root, or CAP_NET_ADMIN), /dev/net/tun and iproute2; skipped with the reason otherwise. Real time, bounded by a timeout.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from axl.crypto import addr_for_key, format_address
from axl.interfaces import IIPv6Layer
from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint
from axl.tcp.stack import TCPStack

OUR_KEY = bytes([0x11]) * 32
KERNEL_KEY = bytes([0x22]) * 32
SIZE = 16 * 1024 * 1024
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000

KERNEL_SIDE = r"""
import hashlib, json, socket, sys, threading, time
mode, addr, port, size, close_first = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
block = bytes((k % 251) for k in range(251 * 256))
if mode == "server":
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port)); ls.listen(1); ls.settimeout(40)
    s, _ = ls.accept()
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(40)
    for _ in range(100):
        try:
            s.connect((addr, port)); break
        except (ConnectionRefusedError, OSError):
            time.sleep(0.1)
s.settimeout(40)
h = hashlib.sha256(); got = [0]
def reader():
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got[0] += len(d); h.update(d)
t = threading.Thread(target=reader); t.start()
sent = 0
while sent < size:
    chunk = block[: min(len(block), size - sent)]
    s.sendall(chunk); sent += len(chunk)
if close_first == "kernel":
    s.shutdown(socket.SHUT_WR)
t.join(40)
s.close()
print(json.dumps({"got": got[0], "sha256": h.hexdigest()}))
"""


def pattern_digest(size: int) -> str:
    block = bytes((k % 251) for k in range(251 * 256))
    h = hashlib.sha256()
    sent = 0
    while sent < size:
        chunk = block[: min(len(block), size - sent)]
        h.update(chunk)
        sent += len(chunk)
    return h.hexdigest()


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


@implementer(IIPv6Layer)
class TunLayer:
    """An IIPv6Layer whose wire is a TUN file descriptor read from the reactor."""

    def __init__(self, fd: int, key: bytes, peers: dict[bytes, bytes], mtu: int,
                 loss: float = 0.0) -> None:
        self.fd, self.address, self.mtu = fd, addr_for_key(key), mtu
        self.peers = peers                  # address -> key
        self.handlers: dict[int, object] = {}
        self.dropped_writes = 0
        self.loss = loss                    # drop this share of packets, each way
        self.rng = random.Random(5)
        self.lost = 0

    def register_protocol(self, next_header: int, handler: object) -> None:
        self.handlers[next_header] = handler

    def register_ptb_handler(self, handler: object) -> None:
        """The TUN delivers no ICMPv6 to the stack's PTB path here."""

    def send_ipv6(self, packet: bytes) -> None:
        if self.fd < 0:
            return
        if self.loss and self.rng.random() < self.loss:
            self.lost += 1
            return
        try:
            os.write(self.fd, packet)
        except BlockingIOError:
            self.dropped_writes += 1          # TCP will retransmit

    # IReadDescriptor
    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "tun"

    def doRead(self) -> None:
        for _ in range(256):
            if self.fd < 0:
                return
            try:
                packet = os.read(self.fd, 65536 + 40)
            except BlockingIOError:
                return
            if len(packet) < 40 or packet[0] >> 4 != 6:
                continue
            if self.loss and self.rng.random() < self.loss:
                self.lost += 1
                continue
            key = self.peers.get(packet[8:24])
            handler = self.handlers.get(packet[6])
            if key is not None and handler is not None and packet[24:40] == self.address:
                handler(key, packet)

    def connectionLost(self, reason: object) -> None:
        pass

    def close(self) -> None:
        """Stop reading and close the TUN (which removes the device)."""
        reactor.removeReader(self)
        fd, self.fd = self.fd, -1
        os.close(fd)


class Collect(Protocol):
    """Sends C{size} pattern bytes, hashes what arrives, optionally closes first."""

    def __init__(self, size: int, close_first: bool) -> None:
        self.size, self.close_first = size, close_first
        self.hash = hashlib.sha256()
        self.got = 0
        self.reason: object = None
        self.done: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        block = bytes((k % 251) for k in range(251 * 256))
        sent = 0
        chunks = []
        while sent < self.size:
            chunk = block[: min(len(block), self.size - sent)]
            chunks.append(chunk)
            sent += len(chunk)
        self.transport.write(b"".join(chunks))
        if self.close_first:
            self.transport.loseWriteConnection()

    def dataReceived(self, data: bytes) -> None:
        self.got += len(data)
        self.hash.update(data)

    def connectionLost(self, reason: object) -> None:
        self.reason = reason
        self.done.callback(None)


class LinuxInteropTests(TestCase):
    """Our TCP against the Linux kernel's, through a TUN in a private network namespace."""

    timeout = 60
    mtu = 65535
    loss = 0.0

    def setUp(self) -> None:
        if sys.platform != "linux":
            raise self.skipTest("needs Linux (network namespaces, TUN)")
        if not os.path.exists("/dev/net/tun") or shutil.which("ip") is None:
            raise self.skipTest("needs /dev/net/tun and iproute2")
        self.ns = f"axltcp{os.getpid()}"
        self.tun = f"axlt{os.getpid() % 100000}"
        try:
            run("ip", "netns", "add", self.ns)
        except (subprocess.CalledProcessError, OSError) as e:
            raise self.skipTest(f"cannot create a network namespace: {e}")
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns], capture_output=True)
        try:
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        except OSError as e:
            raise self.skipTest(f"cannot open /dev/net/tun: {e}")
        try:
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", self.tun.encode(), IFF_TUN | IFF_NO_PI))
        except OSError as e:
            os.close(self.fd)
            raise self.skipTest(f"cannot create a TUN device: {e}")
        kernel_addr = format_address(addr_for_key(KERNEL_KEY))
        run("ip", "link", "set", self.tun, "netns", self.ns)
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        run("ip", "-n", self.ns, "link", "set", self.tun, "mtu", str(self.mtu), "up")
        run("ip", "-n", self.ns, "-6", "addr", "add", f"{kernel_addr}/7", "dev", self.tun, "nodad")
        self.kernel_addr = kernel_addr
        self.layer = TunLayer(self.fd, OUR_KEY, {addr_for_key(KERNEL_KEY): KERNEL_KEY}, self.mtu,
                              self.loss)
        self.stack = TCPStack(self.layer, OUR_KEY, reactor, verify_checksums=True)
        self.assertEqual(self.stack.config.advertised_mss, self.mtu - 60)
        reactor.addReader(self.layer)
        self.addCleanup(self.layer.close)
        self.addCleanup(self.stack.stop, 0.5)

    def kernel(self, mode: str, addr: str, port: int, close_first: str) -> defer.Deferred:
        return getProcessOutputAndValue(
            "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else shutil.which("ip"),
            ["netns", "exec", self.ns, sys.executable, "-c", KERNEL_SIDE, mode, addr, str(port),
             str(SIZE), close_first], env=dict(os.environ))

    def check(self, proto: Collect, out: bytes, err: bytes, code: int) -> None:
        self.assertEqual(code, 0, out + err)
        result = json.loads(out.decode().strip().splitlines()[-1])
        expect = pattern_digest(SIZE)
        self.assertEqual((result["got"], result["sha256"]), (SIZE, expect), err)
        self.assertEqual((proto.got, proto.hash.hexdigest()), (SIZE, expect))

    @defer.inlineCallbacks
    def test_we_connect_and_close_first(self):
        """We connect to a kernel listener, 16 MiB flow each way, we send FIN first."""
        kernel = self.kernel("server", "::", 7000, "us")
        proto = Collect(SIZE, close_first=True)
        endpoint = OverlayClientEndpoint(self.stack, KERNEL_KEY, 7000, timeout=5)
        for _ in range(100):
            try:
                yield endpoint.connect(_Once(proto))
                break
            except ConnectionRefusedError:
                yield _sleep(0.1)
        yield proto.done
        out, err, code = yield kernel
        self.check(proto, out, err, code)
        proto.reason.trap(ConnectionDone)

    @defer.inlineCallbacks
    def test_kernel_connects_and_closes_first(self):
        """A kernel client connects to our listener, 16 MiB each way, the kernel sends FIN first."""
        proto = Collect(SIZE, close_first=False)
        port = yield OverlayServerEndpoint(self.stack, 7001).listen(_Once(proto))
        self.addCleanup(port.stopListening)
        out, err, code = yield self.kernel("client", format_address(addr_for_key(OUR_KEY)), 7001,
                                           "kernel")
        yield proto.done
        self.check(proto, out, err, code)
        proto.reason.trap(ConnectionDone)


class LinuxInteropSmallMTUTests(LinuxInteropTests):
    """The same with a 1280-byte MTU on both sides (MSS 1220, as gVisor uses)."""

    mtu = 1280


class LinuxInteropLossyTests(LinuxInteropTests):
    """MTU 1280 with 2 % of the packets dropped each way: both TCPs must recover."""

    mtu = 1280
    loss = 0.02


class _Once:
    """A factory handing out one prepared protocol."""

    def __init__(self, proto: Protocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: object) -> Protocol:
        return self.proto

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass


def _sleep(seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
