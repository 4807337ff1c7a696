# -*- test-case-name: tests.test_forward_udp -*-
"""
UDP forwards over the overlay's IPv6 UDP (L{axl.ipv6.udp}):

 - C{local_udp} (L{LocalUDPForward}): a local UDP socket; each local sender (host, port) is a
   flow with its own ephemeral overlay port, so the target's replies find their way back;
 - C{remote_udp} (L{RemoteUDPForward}): overlay UDP port OPORT of this node; each remote
   sender (address, port) is a flow with its own local socket connected to HOST:PORT, so the
   service's replies go back to that sender.

A flow without a datagram either way for C{idle} seconds is forgotten; at most C{max_conns}
flows per forward (datagrams that would open more are dropped, and counted in a log line at
most every 10 s). Datagrams larger than one overlay packet can carry are dropped the same way.
Only the target may answer a C{local_udp} flow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from axl.crypto.address import addr_for_key
from axl.crypto.keys import short_key
from axl.errors import StartupError
from axl.forward.spec import HostPort, LocalForwardSpec, RemoteForwardSpec
from axl.ipv6.udp import Datagram, UDPLayer
from axl.logs import observer as log_observer

__all__ = ["LocalUDPForward", "RemoteUDPForward", "start_udp_forwards", "DROP_LOG_INTERVAL", "MAX_DATAGRAM"]

DROP_LOG_INTERVAL = 10.0
"""At most one log line per forward and reason this often (the rest are counted into it)."""
MAX_DATAGRAM = 65535
"""Largest datagram read from a local socket."""

log = Logger(observer=log_observer)


class _Flows:
    """The flows of one forward: creation under the cap, idle expiry, aggregated drop logs."""

    def __init__(self, name: str, max_flows: int, idle: float, clock: IReactorTime) -> None:
        self.name, self.max_flows, self.idle, self.clock = name, max_flows, idle, clock
        self.flows: dict[Any, _Flow] = {}
        self.dropped: dict[str, int] = {}
        self._drop_log: IDelayedCall | None = None
        self.stats = {"flows": 0, "in": 0, "out": 0, "dropped": 0}

    def drop(self, why: str) -> None:
        """Count a dropped datagram; log the counts at most every L{DROP_LOG_INTERVAL} s."""
        self.stats["dropped"] += 1
        self.dropped[why] = self.dropped.get(why, 0) + 1
        if self._drop_log is None:
            self._flush_drops()
            self._drop_log = self.clock.callLater(DROP_LOG_INTERVAL, self._drop_tick)

    def _drop_tick(self) -> None:
        self._drop_log = None
        if self.dropped:
            self._flush_drops()
            self._drop_log = self.clock.callLater(DROP_LOG_INTERVAL, self._drop_tick)

    def _flush_drops(self) -> None:
        for why, n in self.dropped.items():
            log.warn("{fwd}: dropped {n} datagram(s): {why}", fwd=self.name, n=n, why=why)
        self.dropped = {}

    def open(self, key: Any, close: Callable[[], None]) -> _Flow | None:
        """A new flow for C{key}, or None (dropped, logged) when the cap is reached."""
        if len(self.flows) >= self.max_flows:
            self.drop(f"{len(self.flows)} flows open (max_conns)")
            return None
        flow = self.flows[key] = _Flow(self, key, close)
        self.stats["flows"] += 1
        return flow

    def stop(self) -> None:
        """Close every flow and cancel every timer."""
        for flow in list(self.flows.values()):
            flow.expire()
        if self._drop_log is not None and self._drop_log.active():
            self._drop_log.cancel()
        self._drop_log = None


class _Flow:
    def __init__(self, flows: _Flows, key: Any, close: Callable[[], None]) -> None:
        self.flows, self.key, self._close = flows, key, close
        self.last = flows.clock.seconds()
        self._timer: IDelayedCall | None = flows.clock.callLater(flows.idle, self._check)

    def touch(self) -> None:
        self.last = self.flows.clock.seconds()

    def _check(self) -> None:
        self._timer = None
        idle_for = self.flows.clock.seconds() - self.last
        if idle_for < self.flows.idle:
            self._timer = self.flows.clock.callLater(self.flows.idle - idle_for, self._check)
            return
        log.debug("{fwd}: flow {key} idle, closed", fwd=self.flows.name, key=str(self.key))
        self.expire()

    def expire(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.flows.flows.get(self.key) is self:
            del self.flows.flows[self.key]
            self._close()


class LocalUDPForward(DatagramProtocol):
    """C{local_udp}: datagrams to our local socket go to C{spec.remote} over the overlay."""

    def __init__(self, spec: LocalForwardSpec, udp: UDPLayer, clock: IReactorTime) -> None:
        self.spec, self.udp = spec, udp
        remote = spec.remote
        self.target_key = remote.key
        address = addr_for_key(remote.key) if remote.key is not None else remote.address
        assert address is not None
        self.target_address: bytes = address
        self.flows = _Flows(str(spec), spec.max_conns, spec.idle, clock)
        self._oport: dict[Any, int] = {}

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        flows = self.flows
        if len(data) > self.udp.max_payload:
            flows.drop(f"{len(data)} bytes is more than an overlay packet carries ({self.udp.max_payload})")
            return
        flow = flows.flows.get(addr)
        if flow is None:
            oport = self.udp.bind(0, partial(self._reply, addr))
            flow = flows.open(addr, partial(self._closed, addr))
            if flow is None:
                self.udp.unbind(oport)
                return
            self._oport[addr] = oport
        flow.touch()
        flows.stats["out"] += 1
        self.udp.send(self._oport[addr], self.target_address, self.spec.remote.port, data)

    def _reply(self, addr: Any, datagram: Datagram) -> None:
        flow = self.flows.flows.get(addr)
        from_target = (datagram.source_key == self.target_key if self.target_key is not None
                       else datagram.src == self.target_address)  # fmt: skip
        if flow is None or not from_target or datagram.sport != self.spec.remote.port:
            self.flows.drop("a reply from someone other than the target")
            return
        flow.touch()
        self.flows.stats["in"] += 1
        if self.transport is not None:
            self.transport.write(datagram.payload, addr)

    def _closed(self, addr: Any) -> None:
        oport = self._oport.pop(addr, None)
        if oport is not None:
            self.udp.unbind(oport)

    def stop(self) -> None:
        """Forget every flow."""
        self.flows.stop()


class _LocalSocket(DatagramProtocol):
    """The connected local socket of one C{remote_udp} flow: its datagrams are replies."""

    def __init__(self, forward: RemoteUDPForward, key: tuple[bytes, int]) -> None:
        self.forward, self.key = forward, key

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.forward.reply(self.key, data)

    def connectionRefused(self) -> None:
        self.forward.flows.drop("the local service refused a datagram (ICMP port unreachable)")


class RemoteUDPForward:
    """C{remote_udp}: datagrams to our overlay port C{spec.overlay_port} go to the local target."""

    def __init__(self, spec: RemoteForwardSpec, udp: UDPLayer, reactor: Any) -> None:
        assert isinstance(spec.target, HostPort)
        self.spec, self.udp, self.reactor = spec, udp, reactor
        self.target: HostPort = spec.target
        self.flows = _Flows(str(spec), spec.max_conns, spec.idle, reactor)
        self._sockets: dict[tuple[bytes, int], Any] = {}

    def start(self) -> None:
        """Bind the overlay port. @raise ValueError: it is taken."""
        self.udp.bind(self.spec.overlay_port, self.received)

    def received(self, datagram: Datagram) -> None:
        """A datagram from the mesh to our port."""
        key = (datagram.src, datagram.sport)
        flow = self.flows.flows.get(key)
        if flow is None:
            flow = self.flows.open(key, lambda: self._closed(key))
            if flow is None:
                return
            interface = "::1" if ipaddress.ip_address(self.target.host).version == 6 else "127.0.0.1"
            if not ipaddress.ip_address(self.target.host).is_loopback:
                interface = "::" if interface == "::1" else "0.0.0.0"
            port = self.reactor.listenUDP(0, _LocalSocket(self, key), interface=interface,
                                          maxPacketSize=MAX_DATAGRAM)  # fmt: skip
            port.connect(self.target.host, self.target.port)
            self._sockets[key] = port
            log.debug("{fwd}: new flow from {who} ({peer})", fwd=self.flows.name,
                      who=str(ipaddress.IPv6Address(datagram.src)), peer=short_key(datagram.source_key))  # fmt: skip
        flow.touch()
        self.flows.stats["in"] += 1
        self._sockets[key].write(datagram.payload)

    def reply(self, key: tuple[bytes, int], data: bytes) -> None:
        """A datagram from the local service for the flow C{key}."""
        flow = self.flows.flows.get(key)
        if flow is None:
            return
        if len(data) > self.udp.max_payload:
            self.flows.drop(f"{len(data)} bytes is more than an overlay packet carries ({self.udp.max_payload})")
            return
        flow.touch()
        self.flows.stats["out"] += 1
        self.udp.send(self.spec.overlay_port, key[0], key[1], data)

    def _closed(self, key: tuple[bytes, int]) -> None:
        port = self._sockets.pop(key, None)
        if port is not None:
            port.stopListening()

    def stop(self) -> None:
        """Unbind the overlay port and close every flow."""
        self.udp.unbind(self.spec.overlay_port)
        self.flows.stop()


def start_udp_forwards(ports: list[Any], config: Any, udp: UDPLayer, reactor: Any) -> list[Any]:
    """
    Start the C{local_udp} and C{remote_udp} forwards of C{config}; the local ports bound are
    appended to C{ports}.

    @raise axl.errors.StartupError: a port cannot be bound.
    """
    started: list[Any] = []
    for lspec in config.local_udp:
        forward = LocalUDPForward(lspec, udp, reactor)
        listen = lspec.listen
        assert isinstance(listen, HostPort)
        try:
            port = reactor.listenUDP(listen.port, forward, interface=listen.host, maxPacketSize=MAX_DATAGRAM)
        except CannotListenError as e:
            raise StartupError(f"cannot listen on UDP {listen} for {lspec} ({e.socketError}); "
                               f"change local_udp in {config.source}") from None  # fmt: skip
        ports.append(port)
        log.info("{fwd}: listening on UDP {where}", fwd=str(lspec), where=describe_udp(port.getHost()))
        started.append(forward)
    for rspec in config.remote_udp:
        remote = RemoteUDPForward(rspec, udp, reactor)
        try:
            remote.start()
        except ValueError as e:
            raise StartupError(f"cannot listen on overlay UDP port {rspec.overlay_port} for {rspec} ({e}); "
                               f"change remote_udp in {config.source}") from None  # fmt: skip
        log.info("{fwd}: listening on overlay UDP port {port}", fwd=str(rspec), port=rspec.overlay_port)
        started.append(remote)
    return started


def describe_udp(address: Any) -> str:
    """C{host:port} or C{[v6]:port} of a UDP address."""
    return str(HostPort(address.host, address.port))
