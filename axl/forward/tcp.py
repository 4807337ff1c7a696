# -*- test-case-name: tests.test_forward_tcp -*-
"""
The TCP forwards and the SOCKS5 proxy as Twisted protocols over L{axl.forward.splice}:

 - L{SocksFactory}: a local listener speaking SOCKS5 (L{axl.forward.socks}); each CONNECT to a
   mesh target dials overlay TCP;
 - L{LocalTCPFactory} (C{local_tcp}): a local listener whose connections dial one mesh target;
 - L{RemoteTCPFactory} (C{remote_tcp}): an overlay listener whose connections dial a local
   TCP or unix socket, optionally sending a PROXY v2 header first (L{axl.forward.proxy_v2}).

A connection whose other side cannot be reached is reset (SOCKS: answered with the matching
reply code) and logged; one over the forward's cap is refused at once and logged.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectionRefusedError, TCPTimedOutError, TimeoutError
from twisted.internet.interfaces import IAddress, IDelayedCall, IStreamClientEndpoint, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.crypto.keys import short_key
from axl.forward import socks
from axl.forward.proxy_v2 import encode_proxy_v2
from axl.forward.resolve import KeyResolver
from axl.forward.spec import HostPort, OverlayTarget, UnixPath
from axl.forward.splice import Forward, Splice, SpliceEnd, reset_transport
from axl.logs import observer as log_observer
from axl.overlay_address import OverlayAddress
from axl.tcp.endpoints import OverlayClientEndpoint
from axl.tcp.stack import TCPStack

__all__ = [
    "OverlayDialer",
    "SocksFactory",
    "SocksProtocol",
    "LocalTCPFactory",
    "RemoteTCPFactory",
    "DialingEnd",
    "server_endpoint",
    "client_endpoint",
    "describe",
    "proxy_v2_prelude",
    "HANDSHAKE_TIMEOUT",
    "LOCAL_CONNECT_TIMEOUT",
]

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a SOCKS client has to finish its greeting, authentication and request."""
LOCAL_CONNECT_TIMEOUT = 10.0
"""Seconds a C{remote_tcp} forward waits for its local target to accept."""

log = Logger(observer=log_observer)
_LONG_HEX = re.compile(r"[0-9a-fA-F]{64}")


def describe(address: IAddress | None) -> str:
    """An address for logs: C{host:port}, C{[v6]:port}, the unix path, or a short key."""
    if isinstance(address, OverlayAddress):
        return f"{short_key(address.public_key)} [{address.ipv6}]:{address.port}"
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None:
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    name = getattr(address, "name", None)
    if name is not None:
        return f"unix:{name.decode() if isinstance(name, bytes) else name}" if name else "unix socket"
    return str(address)


def server_endpoint(reactor: Any, where: HostPort | UnixPath) -> IStreamServerEndpoint:
    """A local listening endpoint: TCP on an IP literal, or a unix socket (mode 0600)."""
    if isinstance(where, UnixPath):
        return UNIXServerEndpoint(reactor, where.path, mode=0o600, wantPID=True)
    if ipaddress.ip_address(where.host).version == 6:
        return TCP6ServerEndpoint(reactor, where.port, interface=where.host)
    return TCP4ServerEndpoint(reactor, where.port, interface=where.host)


def client_endpoint(reactor: Any, where: HostPort | UnixPath,
                    timeout: float = LOCAL_CONNECT_TIMEOUT) -> IStreamClientEndpoint:  # fmt: skip
    """A local connecting endpoint: an IP literal, a host name, or a unix socket."""
    if isinstance(where, UnixPath):
        return UNIXClientEndpoint(reactor, where.path, timeout=timeout)
    try:
        version = ipaddress.ip_address(where.host).version
    except ValueError:
        return HostnameEndpoint(reactor, where.host, where.port, timeout=timeout)
    if version == 6:
        return TCP6ClientEndpoint(reactor, where.host, where.port, timeout=timeout)
    return TCP4ClientEndpoint(reactor, where.host, where.port, timeout=timeout)


class OverlayDialer:
    """Connects a fresh L{SpliceEnd} to a mesh target over the node's userspace TCP."""

    def __init__(self, stack: TCPStack, resolver: KeyResolver) -> None:
        self.stack, self.resolver = stack, resolver

    def dial(self, target: OverlayTarget) -> Deferred[SpliceEnd]:
        """Resolve C{target}'s key, then connect; fails as the overlay connect fails."""

        def connect(key: bytes) -> Deferred[SpliceEnd]:
            endpoint = OverlayClientEndpoint(self.stack, key, target.port)
            connected: Deferred[SpliceEnd] = connectProtocol(endpoint, SpliceEnd())
            return connected

        return self.resolver.resolve(target).addCallback(connect)


class DialingEnd(SpliceEnd):
    """
    The accepted side of a forwarded connection: paused while C{dial()} connects the other
    side, then spliced to it (after writing C{prelude(other)}, if given, to the other side).
    """

    def __init__(self, forward: Forward, who: str, dial: Callable[[], Deferred[SpliceEnd]] | None,
                 prelude: Callable[[SpliceEnd, SpliceEnd], bytes] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.forward, self.who = forward, who
        self._dial, self._prelude = dial, prelude
        self._pending: Deferred[SpliceEnd] | None = None

    def connectionMade(self) -> None:
        self.forward.active.add(self)
        if self._dial is not None:
            self.start_dial(self._dial)

    def start_dial(self, dial: Callable[[], Deferred[SpliceEnd]]) -> None:
        """Pause this side and connect the other."""
        assert self.transport is not None
        self.transport.pauseProducing()
        d = self._pending = dial()
        d.addCallbacks(self._connected, self._failed)
        d.addErrback(lambda f: log.failure("forward {fwd} failed", f, fwd=self.forward.name))

    def _connected(self, other: SpliceEnd) -> None:
        self._pending = None
        assert other.transport is not None
        if self.lost_reason is not None:
            other.transport.loseConnection()
            return
        if self._prelude is not None:
            other.transport.write(self._prelude(self, other))
        self.connected_to(other)
        Splice(self.forward, self, other)

    def connected_to(self, other: SpliceEnd) -> None:
        """Hook: the other side is connected (SOCKS answers here)."""

    def _failed(self, failure: Failure) -> None:
        self._pending = None
        if self.lost_reason is not None:
            return
        self.forward.failed(self.who, failure.getErrorMessage())
        self.dial_failed(failure)

    def dial_failed(self, failure: Failure) -> None:
        """Hook: the other side could not be reached. By default: reset this side."""
        reset_transport(self.transport)

    def connectionLost(self, reason: Failure = Failure(Exception("lost"))) -> None:
        self.forward.active.discard(self)
        super().connectionLost(reason)
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()


def _reply_code(failure: Failure) -> int:
    if failure.check(ConnectionRefusedError):
        return socks.CONNECTION_REFUSED
    if failure.check(TCPTimedOutError, TimeoutError):
        return socks.HOST_UNREACHABLE
    return socks.GENERAL_FAILURE


class SocksProtocol(DialingEnd):
    """A SOCKS5 client connection: the handshake, then a spliced overlay connection."""

    def __init__(self, forward: Forward, who: str, dialer: OverlayDialer,
                 credentials: tuple[bytes, bytes] | None) -> None:  # fmt: skip
        super().__init__(forward, who, None)
        self._codec = socks.SocksServerCodec(credentials)
        self._dialer = dialer
        self._timer: IDelayedCall | None = None
        self._target: OverlayTarget | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._timer = self.forward.clock.callLater(HANDSHAKE_TIMEOUT, self._handshake_timeout)

    def _handshake_timeout(self) -> None:
        self._timer = None
        log.info("{fwd}: closing {who}: no SOCKS request within {t:g} s",
                 fwd=self.forward.name, who=self.who, t=HANDSHAKE_TIMEOUT)  # fmt: skip
        assert self.transport is not None
        self.transport.loseConnection()

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def dataReceived(self, data: bytes) -> None:
        if self._codec.done:
            super().dataReceived(data)
            return
        step = self._codec.feed(data)
        assert self.transport is not None
        if step.output:
            self.transport.write(step.output)
        if step.close is not None:
            self._stop_timer()
            log.info("{fwd}: refused {who}: {why}", fwd=self.forward.name, who=self.who, why=step.close)
            self.transport.loseConnection()
            return
        if step.request is not None:
            self._stop_timer()
            self._request(step.request, step.rest)

    def _request(self, request: socks.Request, rest: bytes) -> None:
        assert self.transport is not None
        target = socks.check_target(request)
        if isinstance(target, int):
            host = request.host if isinstance(request.host, str) else str(ipaddress.ip_address(request.host))
            host = _LONG_HEX.sub(lambda m: short_key(m.group()), host)  # keys are shortened in logs
            log.info("{fwd}: refused CONNECT from {who} to {host} port {port}: {why}",
                     fwd=self.forward.name, who=self.who, host=host, port=request.port,
                     why=socks.REPLY_TEXT[target])  # fmt: skip
            self.transport.write(socks.encode_reply(target))
            self.transport.loseConnection()
            return
        self._target = target
        if rest:
            super().dataReceived(rest)
        self.start_dial(lambda: self._dialer.dial(target))

    def connected_to(self, other: SpliceEnd) -> None:
        assert self.transport is not None and other.transport is not None
        host = other.transport.getHost()
        address = ipaddress.IPv6Address(host.ipv6).packed if isinstance(host, OverlayAddress) else None
        self.transport.write(socks.encode_reply(socks.SUCCEEDED, address, getattr(host, "port", 0)))

    def dial_failed(self, failure: Failure) -> None:
        assert self.transport is not None
        self.transport.write(socks.encode_reply(_reply_code(failure)))
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = Failure(Exception("lost"))) -> None:
        self._stop_timer()
        super().connectionLost(reason)


class SocksFactory(Factory):
    """The SOCKS5 proxy's listener factory."""

    def __init__(self, forward: Forward, dialer: OverlayDialer,
                 credentials: tuple[bytes, bytes] | None = None) -> None:  # fmt: skip
        self.forward, self.dialer, self.credentials = forward, dialer, credentials

    def buildProtocol(self, addr: IAddress) -> SocksProtocol | None:  # type: ignore[override]
        who = describe(addr)
        if not self.forward.admit(who):
            return None
        return SocksProtocol(self.forward, who, self.dialer, self.credentials)


class LocalTCPFactory(Factory):
    """C{local_tcp}: each local connection is forwarded to C{target} over the overlay."""

    def __init__(self, forward: Forward, dialer: OverlayDialer, target: OverlayTarget) -> None:
        self.forward, self.dialer, self.target = forward, dialer, target

    def buildProtocol(self, addr: IAddress) -> DialingEnd | None:  # type: ignore[override]
        who = describe(addr)
        if not self.forward.admit(who):
            return None
        return DialingEnd(self.forward, who, lambda: self.dialer.dial(self.target))


class RemoteTCPFactory(Factory):
    """
    C{remote_tcp}: each overlay connection to our port is forwarded to the local C{target};
    with C{proxy_v2} the local service first gets a PROXY v2 header naming the caller.
    """

    def __init__(self, forward: Forward, reactor: Any, target: HostPort | UnixPath,
                 proxy_v2: bool = False) -> None:  # fmt: skip
        self.forward, self.reactor, self.target, self.proxy_v2 = forward, reactor, target, proxy_v2

    def buildProtocol(self, addr: IAddress) -> DialingEnd | None:  # type: ignore[override]
        who = describe(addr)
        if not self.forward.admit(who):
            return None
        endpoint = client_endpoint(self.reactor, self.target)
        prelude = proxy_v2_prelude if self.proxy_v2 else None
        return DialingEnd(self.forward, who, lambda: connectProtocol(endpoint, SpliceEnd()), prelude)


def proxy_v2_prelude(end: SpliceEnd, other: SpliceEnd) -> bytes:
    """The PROXY v2 header for the overlay connection of C{end}: caller -> us, caller's key."""
    assert end.transport is not None
    caller, ours = end.transport.getPeer(), end.transport.getHost()
    assert isinstance(caller, OverlayAddress) and isinstance(ours, OverlayAddress)
    return encode_proxy_v2(ipaddress.IPv6Address(caller.ipv6).packed, caller.port,
                           ipaddress.IPv6Address(ours.ipv6).packed, ours.port,
                           caller.public_key)  # fmt: skip
