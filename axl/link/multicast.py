# -*- test-case-name: tests.test_link_multicast -*-
"""
Multicast LAN discovery (spec/yggdrasil-extras.md section 7).

Pure parts: L{encode_beacon} / L{decode_beacon} (the 104-byte beacon: version 0.5, key, TCP port,
BLAKE2b-512 of the key keyed by the interface's password) and L{BeaconTimer} (the per-interface
interval: 0 s, then +1 s per beacon up to 15 s, checked on a 1-2.05 s tick).

L{MulticastService}, on every tick: lists the interfaces (UP, RUNNING, MULTICAST, not
point-to-point, with a link-local IPv6 address) that match a C{MulticastInterfaces} entry; for a
Beacon entry runs a TLS listener on the link-local address (through the peer manager) and sends
beacons to C{[ff02::114%if]:9001} with hop limit 1 from port 9001; for a Listen entry joins the
group, and dials every valid beacon's sender once (an ephemeral link:
C{tls://[src%if]:port?key=..&password=..&priority=..}). Beacons sent to a unicast address, too
short, of another version, from ourselves, on a non-Listen interface or with the wrong hash are
ignored silently, in that order (section 7.5).
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
import socket
import struct
from dataclasses import dataclass
from typing import Any, Callable, Protocol as TypingProtocol
from urllib.parse import quote

from zope.interface import implementer

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime, IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.config import MulticastInterface
from axl.logs import observer as log_observer

__all__ = [
    "GROUP",
    "PORT",
    "BEACON_SIZE",
    "MAX_INTERVAL",
    "Beacon",
    "MulticastInterfaceInfo",
    "NetInterface",
    "beacon_hash",
    "encode_beacon",
    "decode_beacon",
    "BeaconTimer",
    "system_interfaces",
    "MulticastSocket",
    "MulticastService",
]

GROUP = "ff02::114"
PORT = 9001
BEACON_SIZE = 104
MAX_INTERVAL = 15.0
TICK = 1.0
TICK_JITTER = 1.048576
_VERSION = (0, 5)
_HEAD = struct.Struct("!HH32sHH")

_IFF_UP, _IFF_POINTOPOINT, _IFF_MULTICAST = 0x1, 0x10, 0x1000


@dataclass(frozen=True)
class Beacon:
    """A decoded beacon."""

    key: bytes
    port: int
    hash: bytes


def beacon_hash(key: bytes, password: bytes) -> bytes:
    """BLAKE2b-512 of the key, keyed by the password (unkeyed when empty)."""
    return hashlib.blake2b(key, digest_size=64, key=password).digest()


def encode_beacon(key: bytes, port: int, password: bytes) -> bytes:
    """The beacon announcing C{key}'s TLS listener on C{port} (always 104 bytes)."""
    digest = beacon_hash(key, password)
    return _HEAD.pack(*_VERSION, key, port, len(digest)) + digest


def decode_beacon(data: bytes) -> Beacon | None:
    """The beacon in C{data}, or None when it is too short or not version 0.5 (trailing bytes
    are ignored, as Yggdrasil does)."""
    if len(data) < _HEAD.size:
        return None
    major, minor, key, port, hash_len = _HEAD.unpack_from(data)
    if len(data) < _HEAD.size + hash_len or (major, minor) != _VERSION:
        return None
    return Beacon(key, port, bytes(data[_HEAD.size : _HEAD.size + hash_len]))


class BeaconTimer:
    """When one interface's next beacon is due: the interval starts at 0 and grows by 1 s per
    beacon up to L{MAX_INTERVAL}."""

    def __init__(self) -> None:
        self.interval = 0.0
        self.last: float | None = None

    def due(self, now: float) -> bool:
        """Whether a beacon goes out now; if so, the interval grows."""
        if self.last is not None and now - self.last < self.interval:
            return False
        if self.interval < MAX_INTERVAL:
            self.interval += 1.0
        self.last = now
        return True


@dataclass(frozen=True)
class MulticastInterfaceInfo:
    """
    One row of C{getMulticastInterfaces} (spec/yggdrasil-extras.md section 1.6.9).

    @ivar address: the beacon listener's C{[fe80::…]:port}, or C{"-"} when there is none.
    @ivar password: whether a password is set.
    """

    name: str
    address: str
    beacon: bool
    listen: bool
    password: bool


@dataclass(frozen=True)
class NetInterface:
    """One network interface as the scan sees it."""

    name: str
    index: int
    usable: bool  # UP, RUNNING, MULTICAST and not point-to-point
    link_local: str | None  # the first fe80::/10 address, without a zone


def system_interfaces() -> list[NetInterface]:
    """The host's interfaces (Linux: C{/sys/class/net} flags, C{/proc/net/if_inet6})."""
    link_local: dict[str, str] = {}
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6:
                    continue
                address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
                if address.is_link_local and fields[5] not in link_local:
                    link_local[fields[5]] = str(address)
    except OSError:
        pass
    out = []
    for index, name in socket.if_nameindex():
        try:
            with open(f"/sys/class/net/{name}/flags") as f:
                flags = int(f.read().strip(), 16)
            with open(f"/sys/class/net/{name}/operstate") as f:
                # The kernel reports IFF_RUNNING (RFC 2863 "up" or "unknown") here, not in flags.
                running = f.read().strip() in ("up", "unknown")
        except (OSError, ValueError):
            continue
        usable = (
            bool(flags & _IFF_UP) and running and bool(flags & _IFF_MULTICAST)
            and not flags & _IFF_POINTOPOINT
        )  # fmt: skip
        out.append(NetInterface(name, index, usable, link_local.get(name)))
    return out


class BeaconSocket(TypingProtocol):
    """What the service needs from the UDP socket (L{MulticastSocket}, or a fake in tests)."""

    def join(self, index: int) -> None:
        """Join the beacon group on interface C{index} (joining twice is harmless)."""

    def send(self, data: bytes, index: int) -> None:
        """Send one beacon out of interface C{index}."""

    def close(self) -> None:
        """Stop reading and close the socket."""


@implementer(IReadDescriptor)
class MulticastSocket:
    """
    The UDP socket on C{[::]:9001} (SO_REUSEADDR), read with C{recvmsg} so that each datagram's
    destination address (IPV6_PKTINFO) is known; beacons leave from it with hop limit 1.

    @param received: called with (data, source address, source interface index, destination).
    """

    log = Logger(observer=log_observer)

    def __init__(self, reactor: Any, received: Callable[[bytes, str, int, str], None],
                 port: int = PORT) -> None:  # fmt: skip
        self._reactor = reactor
        self._received = received
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.bind(("::", port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._joined: set[int] = set()
        self._join_failed: set[int] = set()
        reactor.addReader(self)

    def fileno(self) -> int:
        return self._sock.fileno()

    def logPrefix(self) -> str:
        return "multicast"

    def doRead(self) -> None:
        for _ in range(64):  # a bounded batch per wake-up
            try:
                data, ancillary, _flags, addr = self._sock.recvmsg(2048, socket.CMSG_SPACE(20))
            except BlockingIOError:
                return
            except OSError as e:
                self.log.warn("multicast socket read failed: {err}", err=e)
                return
            destination, index = "", 0
            for level, kind, value in ancillary:
                if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 20:
                    destination = str(ipaddress.IPv6Address(value[:16]))
                    index = struct.unpack("@I", value[16:20])[0]
            source = addr[0].split("%", 1)[0]
            self._received(data, source, index or addr[3], destination)

    def connectionLost(self, reason: Failure) -> None:
        self.close()

    def join(self, index: int) -> None:
        """
        Join the beacon group on interface C{index}; a failure is logged once per interface
        (the service retries every tick).
        """
        if index in self._joined:
            return
        mreq = socket.inet_pton(socket.AF_INET6, GROUP) + struct.pack("@I", index)
        try:
            self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        except OSError as e:
            if index not in self._join_failed:  # retried every tick; said once
                self._join_failed.add(index)
                self.log.warn("cannot join {group} on interface {index}: {err}",
                              group=GROUP, index=index, err=e)  # fmt: skip
            return
        self._join_failed.discard(index)
        self._joined.add(index)

    def send(self, data: bytes, index: int) -> None:
        """Send beacon C{data} to the group on interface C{index} (a failure is logged at debug)."""
        try:
            self._sock.sendto(data, (GROUP, PORT, 0, index))
        except OSError as e:
            self.log.debug("beacon on interface {index} not sent: {err}", index=index, err=e)

    def close(self) -> None:
        """Stop reading and close the socket (idempotent)."""
        if self._sock.fileno() >= 0:
            self._reactor.removeReader(self)
            self._sock.close()


class PeerLinks(TypingProtocol):
    """What multicast needs from the peer manager."""

    def add_local_listener(self, uri: str) -> Deferred[IListeningPort]:
        """Listen on C{uri} for links from beacon receivers; fires with the port."""

    def dial_ephemeral(self, uri: str) -> bool:
        """Dial a beacon's sender once; return whether a dial started."""


@dataclass
class _Active:
    """An interface in use: its entry, listener and beacon timer."""

    iface: NetInterface
    entry: MulticastInterface
    timer: BeaconTimer
    listener: IListeningPort | None = None
    listening: Deferred[IListeningPort] | None = None


class MulticastService(Service):
    """
    Multicast discovery for the C{MulticastInterfaces} entries (started only when some entry has
    Beacon or Listen).

    @param links: the peer manager (listeners and ephemeral dials go through it).
    @param open_socket: makes the UDP socket given the receive callback (tests pass a fake).
    @param interfaces: lists the interfaces (default: L{system_interfaces}).
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        key: bytes,
        entries: tuple[MulticastInterface, ...],
        links: PeerLinks,
        clock: IReactorTime,
        open_socket: Callable[[Callable[[bytes, str, int, str], None]], BeaconSocket] | None = None,
        interfaces: Callable[[], list[NetInterface]] = system_interfaces,
        rng: random.Random | None = None,
    ) -> None:
        self._key = key
        self._entries = entries
        self._links = links
        self._clock = clock
        self._open_socket = open_socket or (lambda cb: MulticastSocket(clock, cb))
        self._interfaces = interfaces
        self._rng = rng or random.Random()
        self._patterns = [(re.compile(e.regex), e) for e in entries]
        self._active: dict[str, _Active] = {}
        self._socket: BeaconSocket | None = None
        self._tick: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if not any(e.beacon or e.listen for e in self._entries):
            return
        try:
            self._socket = self._open_socket(self._received)
        except OSError as e:
            self.log.error("multicast discovery off: cannot open UDP port {port}: {err}",
                           port=PORT, err=e)  # fmt: skip
            return
        self._scan()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._tick is not None and self._tick.active():
            self._tick.cancel()
        self._tick = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        waits: list[Deferred[Any]] = []
        for active in self._active.values():
            if active.listening is not None and not active.listening.called:
                active.listening.cancel()
            if active.listener is not None:
                waits.append(maybeDeferred(active.listener.stopListening))
        self._active = {}
        return DeferredList(waits).addCallback(lambda _: None)

    # -- the tick ----------------------------------------------------------------------------

    def _entry_for(self, name: str) -> MulticastInterface | None:
        for pattern, entry in self._patterns:
            if (entry.beacon or entry.listen) and pattern.search(name):
                return entry
        return None

    def _scan(self) -> None:
        self._tick = None
        seen = set()
        for iface in self._interfaces():
            entry = self._entry_for(iface.name)
            if entry is None or not iface.usable or iface.link_local is None:
                continue
            seen.add(iface.name)
            active = self._active.get(iface.name)
            if active is not None and (active.iface != iface or active.entry != entry):
                self._drop(iface.name)  # address or entry changed: start over
                active = None
            if active is None:
                active = self._active[iface.name] = _Active(iface, entry, BeaconTimer())
                if entry.beacon:
                    self._listen(active)
            if entry.listen and self._socket is not None:
                self._socket.join(iface.index)
            if entry.beacon and active.listener is not None and active.timer.due(self._clock.seconds()):
                port = active.listener.getHost().port  # type: ignore[attr-defined]
                if self._socket is not None:
                    self._socket.send(encode_beacon(self._key, port, entry.password.encode()), iface.index)
        for name in list(self._active):
            if name not in seen:
                self._drop(name)
        if self.running:
            self._tick = self._clock.callLater(TICK + TICK_JITTER * self._rng.random(), self._scan)

    def _listen(self, active: _Active) -> None:
        iface, entry = active.iface, active.entry
        uri = f"tls://[{iface.link_local}%25{quote(iface.name)}]:{entry.port}"
        query = [f"priority={entry.priority}"] if entry.priority else []
        if entry.password:
            query.append(f"password={quote(entry.password, safe='')}")
        if query:
            uri += "?" + "&".join(query)
        d = self._links.add_local_listener(uri)
        active.listening = d

        def listening(port: IListeningPort) -> None:
            active.listener = port
            active.listening = None
            self.log.info("multicast on {iface}: beacon listener [{address}]:{port}",
                          iface=iface.name, address=iface.link_local,
                          port=port.getHost().port)  # type: ignore[attr-defined]  # fmt: skip
            if self._active.get(iface.name) is not active:
                port.stopListening()

        def failed(failure: Failure) -> None:
            active.listening = None
            self.log.warn("multicast listener on {iface} failed: {err}",
                          iface=iface.name, err=failure.getErrorMessage())  # fmt: skip

        d.addCallbacks(listening, failed)

    def _drop(self, name: str) -> None:
        active = self._active.pop(name)
        if active.listening is not None and not active.listening.called:
            active.listening.cancel()
        if active.listener is not None:
            active.listener.stopListening()

    # -- receiving -----------------------------------------------------------------------------

    def _received(self, data: bytes, source: str, index: int, destination: str) -> None:
        if destination and destination != GROUP:
            return
        beacon = decode_beacon(data)
        if beacon is None or beacon.key == self._key:
            return
        active = next((a for a in self._active.values() if a.iface.index == index), None)
        if active is None or not active.entry.listen:
            return
        password = active.entry.password.encode()
        if beacon.hash != beacon_hash(beacon.key, password):
            return
        uri = (f"tls://[{source}%25{quote(active.iface.name)}]:{beacon.port}"
               f"?key={beacon.key.hex()}&password={quote(active.entry.password, safe='')}"
               f"&priority={active.entry.priority}")  # fmt: skip
        self._links.dial_ephemeral(uri)

    # -- queries ---------------------------------------------------------------------------

    def multicast_interfaces(self) -> list[MulticastInterfaceInfo]:
        """The admin socket's C{getMulticastInterfaces} rows, sorted by name (extras 1.6.9)."""
        out = []
        for name in sorted(self._active):
            active = self._active[name]
            address = "-"
            if active.listener is not None:
                address = f"[{active.iface.link_local}]:{active.listener.getHost().port}"  # type: ignore[attr-defined]
            out.append(MulticastInterfaceInfo(name, address, active.entry.beacon,
                                              active.entry.listen, bool(active.entry.password)))
        return out

