# -*- test-case-name: tests.test_link_multicast -*-
"""
Tests for L{axl.link.multicast} (spec/yggdrasil-extras.md section 7): the beacon bytes against
the captures, the interval schedule, the receive checks in order, the service with a fake socket
and a Clock, the peer manager's multicast hooks on the in-memory network, and (root only) two
nodes in network namespaces joined by a veth pair: ours and a real Yggdrasil, with and without a
password.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

from twisted.internet.address import IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from axl.config import MulticastInterface
from axl.link.multicast import (
    BEACON_SIZE,
    GROUP,
    MAX_INTERVAL,
    BeaconTimer,
    MulticastInterfaceInfo,
    MulticastService,
    NetInterface,
    beacon_hash,
    decode_beacon,
    encode_beacon,
)
from axl.link.peers import MAX_EPHEMERAL, PeerEntry, PeerManager
from axl.link.testing import MemoryNetwork, identity
from tests.test_e2e_twistd import TWISTD
from tests.transport_helpers import real_binary
from tests.vectors import identity as vector_identity

KEY_A = vector_identity("A").public_key
CAPTURE_1 = bytes.fromhex(
    "00000005" + KEY_A.hex() + "826d0040"
    "10d41ad57be310eac338e0c531b10f8dc49196a96b05d439ae86d0a4c917f4db"
    "afa70c91b55832c27ace3e4f4fa320828624ae65fe4d3c248ef936e4fd3a96d2"
)
CAPTURE_2 = bytes.fromhex(
    "00000005" + KEY_A.hex() + "30390040"
    "fa7753e8b61dfec084e65d335edeaec7f77ca98a0aa412d49f5c2214546a4074"
    "84ec83607d881c56bcccf23a010ca3d99b43b55554beed8aacea818fc41ab582"
)
OTHER = identity(7).public_key
V1 = NetInterface("v1", 5, True, "fe80::1")


class BeaconTests(SynchronousTestCase):
    def test_captures(self) -> None:
        """Our beacons equal the two captured from a real 0.5.14 node, byte for byte."""
        self.assertEqual(encode_beacon(KEY_A, 33389, b""), CAPTURE_1)
        self.assertEqual(encode_beacon(KEY_A, 12345, b"secret"), CAPTURE_2)
        self.assertEqual(len(CAPTURE_1), BEACON_SIZE)

    def test_decode(self) -> None:
        """Decoding gives key, port and hash; trailing bytes are ignored."""
        beacon = decode_beacon(CAPTURE_2 + b"x" * 11)
        assert beacon is not None
        self.assertEqual((beacon.key, beacon.port), (KEY_A, 12345))
        self.assertEqual(beacon.hash, beacon_hash(KEY_A, b"secret"))

    def test_rejects(self) -> None:
        """Too short, truncated hash, and other versions decode to None."""
        for data in (CAPTURE_1[:39], CAPTURE_1[:103], b"\x00\x00\x00\x04" + CAPTURE_1[4:],
                     b"\x00\x01\x00\x05" + CAPTURE_1[4:]):  # fmt: skip
            self.assertIsNone(decode_beacon(data))


class TimerTests(SynchronousTestCase):
    def test_schedule(self) -> None:
        """The first beacon is immediate; then gaps of at least 1, 2, 3 ... s, capped at 15 s."""
        timer, sent = BeaconTimer(), []
        for tick in range(0, 400):
            now = tick * 0.5
            if timer.due(now):
                sent.append(now)
        gaps = [b - a for a, b in zip(sent, sent[1:])]
        self.assertEqual(sent[0], 0.0)
        self.assertEqual(gaps[:5], [1.0, 2.0, 3.0, 4.0, 5.0])
        self.assertEqual(max(gaps), MAX_INTERVAL)
        self.assertEqual(timer.interval, MAX_INTERVAL)


class FakeSocket:
    def __init__(self, received: Callable[[bytes, str, int, str], None]) -> None:
        self.received = received
        self.sent: list[tuple[bytes, int]] = []
        self.joined: list[int] = []
        self.closed = False

    def join(self, index: int) -> None:
        self.joined.append(index)

    def send(self, data: bytes, index: int) -> None:
        self.sent.append((data, index))

    def close(self) -> None:
        self.closed = True


class FakePort:
    def __init__(self, port: int) -> None:
        self.port, self.stopped = port, False

    def getHost(self) -> IPv6Address:
        return IPv6Address("TCP", "fe80::1", self.port)

    def stopListening(self) -> None:
        self.stopped = True


class FakeLinks:
    def __init__(self) -> None:
        self.listeners: list[str] = []
        self.ports: list[FakePort] = []
        self.dials: list[str] = []

    def add_local_listener(self, uri: str) -> Deferred[Any]:
        self.listeners.append(uri)
        self.ports.append(FakePort(33389))
        return succeed(self.ports[-1])

    def dial_ephemeral(self, uri: str) -> bool:
        self.dials.append(uri)
        return True


class ServiceTests(SynchronousTestCase):
    def make(self, entries: tuple[MulticastInterface, ...], ifaces: list[NetInterface] | None = None
             ) -> tuple[MulticastService, FakeLinks, Clock]:  # fmt: skip
        self.clock, links = Clock(), FakeLinks()
        self.ifaces = ifaces if ifaces is not None else [V1]
        self.socket: FakeSocket | None = None

        def open_socket(cb: Callable[[bytes, str, int, str], None]) -> FakeSocket:
            self.socket = FakeSocket(cb)
            return self.socket

        service = MulticastService(KEY_A, entries, links, self.clock, open_socket,
                                   lambda: list(self.ifaces), random.Random(1))  # fmt: skip
        service.startService()
        self.addCleanup(service.stopService)
        return service, links, self.clock

    def test_beacon_and_listener(self) -> None:
        """A Beacon entry opens a local TLS listener on the link-local address and beacons its
        port at once; Listen joins the group; both show in multicast_interfaces."""
        entry = MulticastInterface("^v", True, True, 0, 3, "secret")
        service, links, clock = self.make((entry,))
        self.assertEqual(links.listeners, ["tls://[fe80::1%25v1]:0?priority=3&password=secret"])
        assert self.socket is not None
        self.assertEqual(self.socket.sent, [(encode_beacon(KEY_A, 33389, b"secret"), 5)])
        self.assertEqual(self.socket.joined, [5])
        self.assertEqual(service.multicast_interfaces(), [
            MulticastInterfaceInfo("v1", "[fe80::1]:33389", True, True, True)])  # fmt: skip

    def test_beacon_timing(self) -> None:
        """Beacons follow the growing interval on the 1-2.05 s tick."""
        self.make((MulticastInterface(),))
        times = []
        for _ in range(400):
            self.clock.advance(0.1)
            assert self.socket is not None
            if len(self.socket.sent) > len(times):
                times.append(self.clock.seconds())
        gaps = [b - a for a, b in zip(times, times[1:])]
        for n, gap in enumerate(gaps[:4], start=1):
            self.assertTrue(n <= gap < n + 2.1, gaps)

    def test_skipped_interfaces(self) -> None:
        """Unusable interfaces, ones without fe80, unmatched names and entries with neither
        Beacon nor Listen are not used."""
        ifaces = [NetInterface("v2", 6, False, "fe80::2"), NetInterface("v3", 7, True, None),
                  NetInterface("eth0", 8, True, "fe80::8")]  # fmt: skip
        service, links, _ = self.make((MulticastInterface("^v"), MulticastInterface("eth", False, False)), ifaces)
        self.assertEqual((links.listeners, service.multicast_interfaces()), ([], []))

    def test_listen_only(self) -> None:
        """Listen without Beacon: no listener, no beacon, address '-'."""
        service, links, _ = self.make((MulticastInterface(beacon=False),))
        assert self.socket is not None
        self.assertEqual((links.listeners, self.socket.sent), ([], []))
        self.assertEqual(service.multicast_interfaces()[0].address, "-")

    def test_interface_gone(self) -> None:
        """When the interface disappears its listener is stopped."""
        service, links, clock = self.make((MulticastInterface(),))
        self.ifaces = []
        clock.advance(3)
        self.assertTrue(links.ports[0].stopped)
        self.assertEqual(service.multicast_interfaces(), [])

    def test_receive_dials(self) -> None:
        """A valid beacon leads to one ephemeral TLS dial with key, password and priority."""
        _, links, _ = self.make((MulticastInterface(priority=2, password="pw"),))
        assert self.socket is not None
        self.socket.received(encode_beacon(OTHER, 4242, b"pw"), "fe80::9", 5, GROUP)
        self.assertEqual(links.dials, [
            f"tls://[fe80::9%25v1]:4242?key={OTHER.hex()}&password=pw&priority=2"])  # fmt: skip

    def test_receive_checks(self) -> None:
        """Unicast destination, bad bytes, our own key, a non-Listen interface and a wrong
        password hash each mean no dial."""
        _, links, _ = self.make((MulticastInterface("v1", password="pw"), MulticastInterface("v9", listen=False)),
                                [V1, NetInterface("v9", 9, True, "fe80::99")])  # fmt: skip
        assert self.socket is not None
        good = encode_beacon(OTHER, 1, b"pw")
        self.socket.received(good, "fe80::9", 5, "fe80::1")
        self.socket.received(good[:103], "fe80::9", 5, GROUP)
        self.socket.received(b"\x00\x00\x00\x04" + good[4:], "fe80::9", 5, GROUP)
        self.socket.received(encode_beacon(KEY_A, 1, b"pw"), "fe80::9", 5, GROUP)
        self.socket.received(good, "fe80::9", 9, GROUP)  # v9: Beacon only, no Listen
        self.socket.received(encode_beacon(OTHER, 1, b"other"), "fe80::9", 5, GROUP)
        self.assertEqual(links.dials, [])
        self.socket.received(good, "fe80::9", 5, GROUP)
        self.assertEqual(len(links.dials), 1)

    def test_stop(self) -> None:
        """Stopping closes the socket, stops the listeners and leaves no timer."""
        service, links, clock = self.make((MulticastInterface(),))
        service.stopService()
        assert self.socket is not None
        self.assertTrue(self.socket.closed and links.ports[0].stopped)
        self.assertEqual(clock.getDelayedCalls(), [])


class ManagerHookTests(SynchronousTestCase):
    """The peer manager's side: local listeners skip AllowedPublicKeys; ephemeral dials once."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.net = MemoryNetwork(self.clock)

    def manager(self, ident: Any, **kw: Any) -> PeerManager:
        m = PeerManager(ident, self.clock, dial=self.net.dial(ident),
                        listen_endpoint=self.net.listen_endpoint(ident), **kw)  # fmt: skip
        m.startService()
        self.addCleanup(m.stopService)
        return m

    def test_local_listener_and_ephemeral(self) -> None:
        """B dials A's local listener once: the link comes up although A only allows C; a
        second dial to the same identity is refused; the entry goes when the link ends."""
        a = self.manager(identity(1), allowed_keys=[identity(3).public_key])
        b = self.manager(identity(2))
        self.successResultOf(a.add_local_listener("tls://[fe80::1%25v1]:9001"))
        uri = f"tls://[fe80::1%25v1]:9001?key={identity(1).public_key.hex()}"
        self.assertTrue(b.dial_ephemeral(uri))
        self.net.flush()
        self.assertEqual([link.remote_key for link in a.links()], [identity(2).public_key])
        self.assertEqual(b.entries()[0].uri, "tls://[fe80::1%25v1]:9001")
        self.assertFalse(b.dial_ephemeral(uri))
        self.net.kill_all()
        self.assertEqual(b.entries(), [])

    def test_failed_ephemeral_removed(self) -> None:
        """A failed ephemeral dial leaves no entry, so the next beacon dials again."""
        b = self.manager(identity(2))
        self.assertTrue(b.dial_ephemeral("tls://[fe80::5%25v1]:1"))
        self.assertEqual(b.entries(), [])
        self.assertTrue(b.dial_ephemeral("tls://[fe80::5%25v1]:1"))

    def test_ephemeral_bound(self) -> None:
        """At most MAX_EPHEMERAL multicast links exist at once; further beacons are refused."""
        b = self.manager(identity(2))
        for n in range(MAX_EPHEMERAL):
            b._ephemeral.append(PeerEntry(uri=f"tls://h{n}:1", inbound=False, config=None, ephemeral=True))  # type: ignore[arg-type]
        self.assertFalse(b.dial_ephemeral("tls://[fe80::7%25v1]:1"))
        self.assertEqual(self.net.dials, [])

    def test_no_multicast(self) -> None:
        """Without entries there is no multicast service and the admin data is []."""
        self.assertEqual(self.manager(identity(2)).multicast_interfaces(), [])


# ---------------------------------------------------------------------------------------------
# Two nodes on a veth pair in network namespaces (root only).


def _netns_available() -> None:
    if os.geteuid() != 0:
        raise SkipTest("multicast namespace test needs root (ip netns, veth)")
    if shutil.which("ip") is None:
        raise SkipTest("the ip command is not installed")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its PID: TERM, then KILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class NamespaceTests(TestCase):
    """Ours (an axl node process in one namespace) and a real 0.5.14 or 0.5.12 (in the other)."""

    timeout = 90

    def setUp(self) -> None:
        _netns_available()
        self.real = real_binary("yggdrasil-0.5.14")
        self.ctl = real_binary("yggdrasilctl-0.5.14")
        tag = f"axl{os.getpid() % 100000}"
        self.ns = (f"{tag}a", f"{tag}b")
        self.dev = (f"{tag}x", f"{tag}y")
        for ns in self.ns:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            self.addCleanup(subprocess.run, ["ip", "netns", "del", ns], check=False)
        subprocess.run(["ip", "link", "add", self.dev[0], "type", "veth", "peer", "name", self.dev[1]], check=True)
        for ns, dev in zip(self.ns, self.dev):
            subprocess.run(["ip", "link", "set", dev, "netns", ns], check=True)
            for cmd in (["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"],
                        ["sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0"],
                        ["ip", "link", "set", "lo", "up"], ["ip", "link", "set", dev, "up"]):  # fmt: skip
                subprocess.run(["ip", "netns", "exec", ns, *cmd], check=False)

    def _pair(self, password: str, our_password: str | None = None, version: str = "0.5.14") -> None:
        """Run both nodes; expect two links, or none when the passwords differ."""
        self.real, self.ctl = real_binary(f"yggdrasil-{version}"), real_binary(f"yggdrasilctl-{version}")
        expect = 2 if our_password is None else 0
        our_password = password if our_password is None else our_password
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        sockdir = tempfile.mkdtemp(prefix="axlmc")  # a UNIX socket path must be short
        self.addCleanup(shutil.rmtree, sockdir, True)
        admin = os.path.join(sockdir, "real.sock")
        conf = json.loads(subprocess.run([str(self.real), "-genconf", "-json"], capture_output=True,
                                         check=True).stdout)  # fmt: skip
        conf.update({"IfName": "none", "Listen": [], "Peers": [], "AdminListen": f"unix://{admin}",
                     "MulticastInterfaces": [{"Regex": self.dev[0], "Beacon": True, "Listen": True,
                                              "Password": password}]})  # fmt: skip
        real_key = bytes.fromhex(conf["PrivateKey"])[32:].hex()
        with open(os.path.join(tmp, "real.json"), "w") as f:
            json.dump(conf, f)
        ours_conf = {"PrivateKey": (identity(1).seed + identity(1).public_key).hex(),
                     "MulticastInterfaces": [{"Regex": self.dev[1], "Password": our_password}],
                     "api_port": 19002, "AdminListen": f"unix://{sockdir}/ours.sock"}  # fmt: skip
        with open(os.path.join(tmp, "ours.json"), "w") as f:
            json.dump(ours_conf, f)
        # `ip netns exec` execs the program, so each PID is the node itself; output goes to files.
        real_log = open(os.path.join(tmp, "real.log"), "wb")
        self.addCleanup(real_log.close)
        real = subprocess.Popen(["ip", "netns", "exec", self.ns[0], str(self.real),
                                 "-useconffile", os.path.join(tmp, "real.json"), "-logto", "stdout"],
                                stdout=real_log, stderr=subprocess.STDOUT)  # fmt: skip
        self.addCleanup(_stop, real)
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        ours_log = open(os.path.join(tmp, "ours.log"), "wb")
        self.addCleanup(ours_log.close)
        ours = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[1], sys.executable, "-c", TWISTD,
             "-n", "--pidfile=", "axl", "--config", os.path.join(tmp, "ours.json")],
            stdout=ours_log, stderr=subprocess.STDOUT, cwd=tmp,
            env={**os.environ, "PYTHONPATH": checkout},
        )  # fmt: skip
        self.addCleanup(_stop, ours)
        deadline = time.monotonic() + (30 if expect else 6)
        peers: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            out = subprocess.run([str(self.ctl), "-endpoint", f"unix://{admin}", "-json", "getPeers"],
                                 capture_output=True).stdout  # fmt: skip
            try:
                peers = [p for p in json.loads(out)["peers"] if p["up"]]
            except (ValueError, KeyError):
                peers = []
            if len(peers) >= 2:
                break
            time.sleep(0.5)
        if not expect:
            self.assertEqual(peers, [])
            log = open(os.path.join(tmp, "ours.log"), "rb").read()
            self.assertIn(b"multicast on", log)
            self.assertNotIn(b"link tls://[fe80", log)  # no link attempt either way, not even refused
            return
        if len(peers) < 2:
            for proc in (real, ours):
                _stop(proc)
            logs = "\n---\n".join(open(os.path.join(tmp, n), errors="replace").read()[-6000:]
                                  for n in ("real.log", "ours.log"))  # fmt: skip
            self.fail(f"no two links; real node's peers {peers}; logs:\n{logs}")
        self.assertEqual(sorted(p["inbound"] for p in peers), [False, True], peers)
        # Our admin socket reports the interface as a real node would (extras 1.6.9).
        out = subprocess.run([str(self.ctl), "-endpoint", f"unix://{sockdir}/ours.sock", "-json",
                              "getMulticastInterfaces"], capture_output=True).stdout  # fmt: skip
        [row] = json.loads(out)["multicast_interfaces"]
        self.assertEqual((row["name"], row["beacon"], row["listen"], row["password"]),
                         (self.dev[1], True, True, bool(password)))  # fmt: skip
        self.assertTrue(row["address"].startswith("[fe80::"), row)
        self.assertEqual({p["key"] for p in peers}, {identity(1).public_key.hex()})
        for p in peers:
            self.assertTrue(p["remote"].startswith("tls://[fe80::"), p)
        self.assertNotEqual(real_key, identity(1).public_key.hex())

    def test_two_links(self) -> None:
        """Both with Beacon and Listen: two TLS links, one each way (extras 7.5)."""
        self._pair("")

    def test_two_links_with_password(self) -> None:
        """The same with a shared Password."""
        self._pair("s3cret")

    def test_two_links_0512(self) -> None:
        """The same with a real 0.5.12 node and a Password."""
        self._pair("s3cret", version="0.5.12")

    def test_password_mismatch(self) -> None:
        """Different Passwords: beacons flow both ways for 6 s, no link is made."""
        self._pair("s3cret", "other")
