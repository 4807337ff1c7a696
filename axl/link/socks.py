# -*- test-case-name: tests.test_link_socks -*-
"""
Peering through a SOCKS5 proxy: C{socks://} and C{sockstls://} (spec/yggdrasil-extras.md section 5).

L{Socks5Handshake} is the sans-IO client side of RFC 1928 (CONNECT only) with RFC 1929
user/password authentication; L{SocksClientEndpoint} runs it over a TCP connection to the proxy
and then hands the tunnel to the link protocol (wrapped in TLS first for C{sockstls://}).
Host names are passed to the proxy as names (ATYP 3), so nothing is resolved locally: this is
what makes C{.onion} targets work through Tor.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from typing import Any

from zope.interface import implementer

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from axl.errors import ProtocolError

__all__ = ["SOCKS_TIMEOUT", "SocksError", "Socks5Handshake", "SocksClientEndpoint"]

# The proxy must have opened the tunnel within this long after the TCP connection.
SOCKS_TIMEOUT = 30.0

_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


class SocksError(ProtocolError):
    """The proxy refused, failed, or spoke something that is not SOCKS5."""


class _Stage(enum.Enum):
    METHOD = "method"
    AUTH = "auth"
    REPLY = "reply"
    OPEN = "open"


class Socks5Handshake:
    """
    The client side of a SOCKS5 CONNECT, without I/O.

    Call L{start} for the first bytes to send, then L{feed} every byte received; each call
    returns the bytes to send next. Once L{is_open}, L{leftover} holds tunnel bytes that came in
    with the proxy's reply.
    """

    def __init__(
        self, host: str, port: int, user: str | None = None, password: str = ""
    ) -> None:
        self._host, self._port = host, port
        self._user, self._password = user, password
        self._buf = bytearray()
        self.stage = _Stage.METHOD
        self.leftover = b""

    @property
    def is_open(self) -> bool:
        """Whether the proxy has connected us: link bytes may flow."""
        return self.stage is _Stage.OPEN

    def start(self) -> bytes:
        """The greeting: C{05 01 00}, or C{05 02 00 02} when we have a user name."""
        return b"\x05\x02\x00\x02" if self._user is not None else b"\x05\x01\x00"

    def feed(self, data: bytes) -> bytes:
        """Bytes from the proxy; return what to send next. Raise L{SocksError} on a refusal."""
        if self.stage is _Stage.OPEN:
            raise RuntimeError("the tunnel is open; its bytes belong to the link")
        self._buf += data
        out = b""
        while True:
            step = self._step()
            if step is None:
                return out
            out += step
            if self.is_open:
                self.leftover = bytes(self._buf)
                self._buf.clear()
                return out

    def _step(self) -> bytes | None:
        buf = self._buf
        if self.stage is _Stage.METHOD:
            if len(buf) < 2:
                return None
            version, method = buf[0], buf[1]
            del buf[:2]
            if version != 5:
                raise SocksError(f"the proxy is not SOCKS5 (version byte {version})")
            if method == 0:
                self.stage = _Stage.REPLY
                return self._connect_request()
            if method == 2 and self._user is not None:
                self.stage = _Stage.AUTH
                user, password = self._user.encode(), self._password.encode()
                return bytes([1, len(user)]) + user + bytes([len(password)]) + password
            raise SocksError("the proxy accepts none of our authentication methods")
        if self.stage is _Stage.AUTH:
            if len(buf) < 2:
                return None
            status = buf[1]
            del buf[:2]
            if status != 0:
                raise SocksError("the proxy refused our user name and password")
            self.stage = _Stage.REPLY
            return self._connect_request()
        # _Stage.REPLY: 05 rep 00 atyp addr port
        if len(buf) < 5:
            return None
        if buf[0] != 5:
            raise SocksError(f"bad SOCKS5 reply version {buf[0]}")
        if buf[1] != 0:
            raise SocksError(f"the proxy could not connect: {_REPLIES.get(buf[1], f'error {buf[1]}')}")
        atyp = buf[3]
        if atyp == 1:
            size = 4 + 4 + 2
        elif atyp == 4:
            size = 4 + 16 + 2
        elif atyp == 3:
            size = 4 + 1 + buf[4] + 2
        else:
            raise SocksError(f"bad address type {atyp} in the proxy's reply")
        if len(buf) < size:
            return None
        del buf[:size]
        self.stage = _Stage.OPEN
        return b""

    def _connect_request(self) -> bytes:
        try:
            ip = ipaddress.ip_address(self._host)
        except ValueError:
            name = self._host.encode("idna")
            if len(name) > 255:
                raise SocksError("target host name is longer than 255 bytes") from None
            address = b"\x03" + bytes([len(name)]) + name
        else:
            address = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
        return b"\x05\x01\x00" + address + struct.pack("!H", self._port)


class _SocksProtocol(Protocol):
    """Runs the handshake on the proxy connection, then passes everything to C{wrapped}."""

    def __init__(
        self, handshake: Socks5Handshake, factory: IProtocolFactory, clock: IReactorTime,
        opened: Deferred[IProtocol],
    ) -> None:  # fmt: skip
        self._handshake = handshake
        self._factory = factory
        self._clock = clock
        self._opened: Deferred[IProtocol] | None = opened
        self._timer: IDelayedCall | None = None
        self.wrapped: IProtocol | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self._timer = self._clock.callLater(SOCKS_TIMEOUT, self._timed_out)
        self.transport.write(self._handshake.start())

    def dataReceived(self, data: bytes) -> None:
        if self.wrapped is not None:
            self.wrapped.dataReceived(data)
            return
        assert self.transport is not None
        try:
            reply = self._handshake.feed(data)
        except SocksError as e:
            self._fail(Failure(e))
            return
        if reply:
            self.transport.write(reply)
        if self._handshake.is_open:
            self._tunnel_open()

    def _tunnel_open(self) -> None:
        self._cancel_timer()
        wrapped = self._factory.buildProtocol(self.transport.getPeer())  # type: ignore[union-attr]
        if wrapped is None:
            self._fail(Failure(ConnectError("the link refused the connection")))
            return
        self.wrapped = wrapped
        assert self.transport is not None
        wrapped.makeConnection(self.transport)
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.callback(wrapped)
        if self._handshake.leftover:
            wrapped.dataReceived(self._handshake.leftover)

    def abort(self) -> None:
        """The dial was cancelled: drop the proxy connection and report nothing more."""
        self._cancel_timer()
        self._opened = None
        if self.transport is not None and self.wrapped is None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(Failure(SocksError(f"the proxy opened no tunnel within {SOCKS_TIMEOUT:g} s")))

    def _fail(self, failure: Failure) -> None:
        self._cancel_timer()
        opened, self._opened = self._opened, None
        if self.transport is not None:
            self.transport.loseConnection()
        if opened is not None:
            opened.errback(failure)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_timer()
        if self.wrapped is not None:
            self.wrapped.connectionLost(reason)
            return
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.errback(Failure(SocksError(
                f"the proxy closed the connection during the SOCKS exchange "
                f"({reason.getErrorMessage()})")))  # fmt: skip


@implementer(IStreamClientEndpoint)
class SocksClientEndpoint:
    """
    Connects to C{target} through the SOCKS5 proxy reached by C{proxy}; fires with the protocol
    built by the factory given to L{connect} once the tunnel is open.
    """

    def __init__(
        self,
        proxy: IStreamClientEndpoint,
        clock: IReactorTime,
        host: str,
        port: int,
        user: str | None = None,
        password: str = "",
    ) -> None:
        self._proxy, self._clock = proxy, clock
        self._host, self._port, self._user, self._password = host, port, user, password

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        built: list[_SocksProtocol] = []

        def cancel(d: Deferred[IProtocol]) -> None:
            for proto in built:
                proto.abort()

        opened: Deferred[IProtocol] = Deferred(cancel)
        handshake = Socks5Handshake(self._host, self._port, self._user, self._password)

        def build() -> _SocksProtocol:
            proto = _SocksProtocol(handshake, protocolFactory, self._clock, opened)
            built.append(proto)
            return proto

        d = self._proxy.connect(Factory.forProtocol(build))

        def connected(_: object) -> Deferred[IProtocol]:
            return opened

        return d.addCallback(connected)
