# -*- test-case-name: tests.test_aio -*-
"""
asyncio streams over overlay TCP (L{axl.tcp.transport.OverlayTransport}), for
L{axl.aio.Node.open_connection} and L{axl.aio.Node.start_server}.

A Twisted protocol (L{_Bridge}) sits on the overlay transport and drives asyncio's own
C{StreamReaderProtocol} through an C{asyncio.Transport} (L{_AsyncioTransport}) that writes to the
overlay transport, so callers get the standard C{asyncio.StreamReader} and C{StreamWriter}.

Flow control both ways:

 - writing: the bridge is registered as the overlay transport's streaming producer; the overlay
   pauses it while more than its send buffer (1 MiB) waits for acknowledgement, which pauses the
   asyncio protocol, so C{await writer.drain()} waits for the peer's TCP to take the data.
 - reading: when the C{StreamReader} holds more than twice its C{limit} it pauses the transport,
   which stops delivery and closes the overlay TCP's receive window (at most 4 MiB arrive after
   that); reading from the C{StreamReader} reopens it.

C{writer.write_eof()} half-closes (FIN); C{writer.close()} closes after what is queued;
C{transport.abort()} resets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError as Refused,
    TCPTimedOutError,
)
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from axl.logs import observer as log_observer
from axl.overlay_address import OverlayAddress

__all__ = ["ClientConnected", "StreamFactory", "client_streams"]

#: C{handler(reader, writer)}, a coroutine function, as for C{asyncio.start_server}.
ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: asyncio's default C{StreamReader} limit (64 KiB), as C{asyncio.open_connection} uses.
DEFAULT_LIMIT = 2**16


def _name(address: OverlayAddress) -> tuple[str, int]:
    return (address.public_key.hex(), address.port)


def asyncio_error(reason: Failure) -> Exception | None:
    """
    What an asyncio protocol's C{connection_lost} gets for a Twisted loss C{reason}: None for a
    clean close, else the built-in exception an asyncio socket would give (C{ConnectionResetError},
    C{ConnectionAbortedError}, C{TimeoutError}, C{ConnectionRefusedError}, C{ConnectionError}).
    """
    if reason.check(ConnectionDone):
        return None
    text = reason.getErrorMessage()
    if reason.check(ConnectionAborted):
        return ConnectionAbortedError(text)
    if reason.check(ConnectionLost):
        return ConnectionResetError(text)
    if reason.check(TCPTimedOutError):
        return TimeoutError(text)
    if reason.check(Refused):
        return ConnectionRefusedError(text)
    if isinstance(reason.value, OSError):
        return reason.value
    return ConnectionError(text)


class _AsyncioTransport(asyncio.Transport):
    """The asyncio face of one overlay connection."""

    def __init__(self, bridge: _Bridge, transport: Any) -> None:
        super().__init__()
        self._bridge = bridge
        self._transport = transport
        self._closing = False

    # -- BaseTransport
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """C{peername}/C{sockname}: C{(64-hex key, port)}; C{peer_key}: the peer's 32 bytes."""
        t = self._transport
        if name == "peername":
            return _name(t.getPeer())
        if name == "sockname":
            return _name(t.getHost())
        if name == "peer_key":
            return t.getPeer().public_key
        if name == "overlay_transport":
            return t
        return default

    def is_closing(self) -> bool:
        t = self._transport
        return self._closing or bool(t.disconnecting) or bool(t.disconnected)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._bridge.close_after_writes()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._bridge.aproto = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._bridge.aproto

    # -- ReadTransport
    def is_reading(self) -> bool:
        return not self._bridge.read_paused

    def pause_reading(self) -> None:
        self._bridge.read_paused = True
        self._transport.pauseProducing()

    def resume_reading(self) -> None:
        # Later, not now: resuming delivers what the overlay held back, and asyncio's
        # StreamReader resumes before it waits for data (data fed now would wake no one).
        if self._bridge.read_paused:
            self._bridge.read_paused = False
            self._bridge.aproto_loop.call_soon(self._resume)

    def _resume(self) -> None:
        if not self._bridge.read_paused:
            self._transport.resumeProducing()

    # -- WriteTransport
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        if self._closing or self._bridge.write_closed:
            raise RuntimeError("the overlay connection is closing: cannot write")
        if data:
            self._transport.write(bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(bytes(d) for d in list_of_data))

    def write_eof(self) -> None:
        if self._bridge.write_closed:
            return
        self._bridge.write_closed = True
        self._bridge.unregister()
        self._transport.loseWriteConnection()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        conn = self._transport.conn
        return int(conn.send_buffered) if conn is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        conn = self._transport.conn
        high = int(conn.cfg.snd_buf) if conn is not None else 0
        return (high // 2, high)

    def abort(self) -> None:
        self._closing = True
        self._transport.abortConnection()


@implementer(IHalfCloseableProtocol, IPushProducer)
class _Bridge(Protocol):
    """
    The Twisted protocol of one overlay connection: feeds the asyncio protocol C{aproto} and is
    the overlay transport's producer (its pause/resume are the asyncio write flow control).
    """

    log = Logger(observer=log_observer)
    aproto: asyncio.Protocol
    transport: Any

    def __init__(self, aproto: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        self.aproto, self.aproto_loop = aproto, loop
        self.read_paused = False
        self.write_closed = False
        self._registered = False
        self._lost = False
        self.atransport: _AsyncioTransport | None = None

    def connectionMade(self) -> None:
        self.atransport = _AsyncioTransport(self, self.transport)
        self.transport.registerProducer(self, True)
        self._registered = True
        self.aproto.connection_made(self.atransport)

    def dataReceived(self, data: bytes) -> None:
        self.aproto.data_received(data)

    def readConnectionLost(self) -> None:
        keep_open = self.aproto.eof_received()
        if not keep_open:
            self.close_after_writes()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._lost:
            return
        self._lost = True
        self._registered = False
        self.aproto.connection_lost(asyncio_error(reason))

    # -- IPushProducer: the overlay's send buffer pausing and resuming us
    def pauseProducing(self) -> None:
        self.aproto.pause_writing()

    def resumeProducing(self) -> None:
        self.aproto.resume_writing()

    def stopProducing(self) -> None:
        pass  # connectionLost follows

    def unregister(self) -> None:
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    def close_after_writes(self) -> None:
        """Close once what is written has gone (FIN), as C{asyncio.Transport.close}."""
        self.unregister()
        self.transport.loseConnection()


class StreamFactory(Factory):
    """
    Builds one L{_Bridge} per connection, with a new C{StreamReader} and C{StreamReaderProtocol};
    C{on_connect} (servers) is called with C{(reader, writer)} once each connection is made.
    """

    noisy = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limit: int = DEFAULT_LIMIT,
        on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], None] | None = None,
    ) -> None:
        self.loop, self.limit, self.on_connect = loop, limit, on_connect
        self.last: tuple[asyncio.StreamReader, asyncio.StreamReaderProtocol] | None = None

    def buildProtocol(self, addr: Any) -> _Bridge:
        reader = asyncio.StreamReader(limit=self.limit, loop=self.loop)
        aproto = asyncio.StreamReaderProtocol(reader, self.on_connect, loop=self.loop)
        self.last = (reader, aproto)
        return _Bridge(aproto, self.loop)


def client_streams(
    factory: StreamFactory, bridge: _Bridge
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The reader and writer of the client connection C{bridge} that C{factory} built."""
    assert factory.last is not None and bridge.atransport is not None
    reader, aproto = factory.last
    return reader, asyncio.StreamWriter(bridge.atransport, aproto, reader, factory.loop)
