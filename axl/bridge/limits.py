# -*- test-case-name: tests.test_bridge_limits -*-
# mypy: allow-untyped-calls
"""
Resource limits of the HTTP bridge's server (issue 12), below the routes of L{axl.bridge.app}:

 - a request's head must arrive within C{header_timeout} of the connection opening or of the
   previous response (so idle keep-alive and slowloris connections go), and its body within
   C{body_timeout} of its head: else C{408} and the connection closes;
 - at most C{max_connections} connections: at the cap a new connection takes the place of
   the one that has waited longest for a request head (idle or slow), or, if every one is
   busy with a request, is answered C{503} and closed; at most C{max_requests} requests being
   handled at once (then C{503});
 - a body larger than C{max_body} is refused with C{413} as soon as that is known: from its
   C{Content-Length}, or, for a chunked body, as its bytes arrive, so nothing over the limit is
   stored; the connection closes;
 - a path that is not UTF-8 once unquoted is C{400} (without the traceback Klein would log);
 - pipelining is bounded by Twisted's channel, which stops reading while a request is handled
   once 16 KiB of later requests wait (they and one socket read at most stay in memory), and
   here also stops answering pipelined requests already read while the write buffer is full;
 - a request of the site's C{streamed} routes (C{POST /send}) whose C{Content-Length} is at
   least C{stream_threshold} is handled as soon as its head is in: its route reads the body as
   it arrives from a L{StreamedBody} (a push producer that pauses the connection), nothing is
   stored for it; answered before the body is all in, the connection reads and throws the rest
   away (within the body deadline), then closes.

Refusals are logged through L{axl.ratelimit.AggregatedLog}.
"""

from __future__ import annotations

from collections.abc import Collection
from io import BytesIO
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

from axl.logs import observer as log_observer
from axl.ratelimit import AggregatedLog
from axl.streams.streamed import BodySink

__all__ = [
    "STREAM_THRESHOLD", "BridgeLimits", "InflightBytes", "LimitedChannel", "LimitedRequest", "LimitedSite",
    "StreamedBody",
]

log = Logger(observer=log_observer)

#: The bridge connections' socket read size and write-buffer mark (Twisted's C{bufferSize}).
CONNECTION_BUFFER = 16 * 1024

# How long a closing connection may take to take its error response before it is aborted.
_CLOSE_GRACE = 2.0

#: Bodies of the streamed routes with a C{Content-Length} of at least this are read as they
#: arrive (L{StreamedBody}); smaller ones, and chunked ones, are stored whole first.
STREAM_THRESHOLD = 4 * 1024 * 1024

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BridgeLimits:
    """The server-level limits of one bridge (config keys C{bridge_*}, C{max_message_size})."""

    def __init__(
        self,
        *,
        header_timeout: float = 10.0,
        body_timeout: float = 60.0,
        max_connections: int = 256,
        max_requests: int = 128,
        max_body: int = 16 * 1024 * 1024,
        stream_threshold: int = STREAM_THRESHOLD,
    ) -> None:
        self.header_timeout = header_timeout
        self.stream_threshold = stream_threshold
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.max_requests = max_requests
        self.max_body = max_body


def _raw_response(code: int, reason: str, message: str, retry_after: bool = False) -> bytes:
    body = message.encode("utf-8") + b"\n"
    retry = "Retry-After: 1\r\n" if retry_after else ""
    return (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n{retry}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii") + body


class StreamedBody:
    """
    The body of a request handled while it arrives, for its route to read (an
    L{axl.streams.streamed.BodySource}): a push producer of the body's bytes that pauses and
    resumes the HTTP connection. Until a sink is attached it keeps what arrives, with the
    connection paused (so at most one read). A client that sent C{Expect: 100-continue} gets its
    C{100 Continue} when the body is first wanted (L{resumeProducing}).

    @ivar length: the declared C{Content-Length}.
    @ivar received: body bytes arrived so far.
    @ivar complete: whether the whole body arrived.
    """

    def __init__(self, channel: HTTPChannel, length: int, expect_continue: bool = False) -> None:
        self.length = length
        self.received = 0
        self.complete = False
        self.awaiting_continue = expect_continue
        self._channel = channel
        self._sink: BodySink | None = None
        self._early: list[bytes] = []
        self._paused = False
        self.pauseProducing()  # until its route takes it

    @property
    def paused(self) -> bool:
        """Whether the connection is paused for this body."""
        return self._paused

    @property
    def buffered(self) -> int:
        """Bytes kept here (arrived before a sink was attached)."""
        return sum(map(len, self._early))

    def attach(self, sink: BodySink) -> None:
        """Deliver the body to C{sink}: what arrived already, then the rest as it arrives."""
        self._sink = sink
        early, self._early = self._early, []
        for chunk in early:
            sink.write(chunk)
        if self.complete:
            sink.end()

    def pauseProducing(self) -> None:
        """Stop reading the connection."""
        if not self._paused:
            self._paused = True
            if self._channel.transport is not None:
                self._channel.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        """Read the connection again (first: the client's C{100 Continue}, if it asked)."""
        transport = self._channel.transport
        if transport is None:
            return
        if self.awaiting_continue:
            self.awaiting_continue = False
            transport.write(_CONTINUE)
        if self._paused:
            self._paused = False
            transport.resumeProducing()  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        """Nothing more is wanted (L{abandon})."""
        self.abandon()

    # -- from the request --------------------------------------------------------------------------

    def data(self, chunk: bytes) -> None:
        """Body bytes arrived."""
        self.received += len(chunk)
        if self._sink is not None:
            self._sink.write(chunk)
        elif not self.complete:
            self._early.append(chunk)

    def ended(self) -> None:
        """The whole body arrived."""
        self.complete = True
        if self._sink is not None:
            self._sink.end()

    def lost(self, why: str) -> None:
        """The body will not be completed."""
        sink, self._sink = self._sink, None
        self._early = []
        if sink is not None and not self.complete:
            sink.lost(why)

    def abandon(self) -> None:
        """The request was answered: whatever still arrives is thrown away."""
        self._sink = None
        self._early = []


class InflightBytes:
    """
    The bytes of request bodies and messages the bridge holds at once
    (C{bridge_max_inflight_bytes}): a stored body counts from its first byte (its declared
    length at once), until its request finishes, and a delivery counts what its request has
    not counted yet. A new holding is refused when it would pass the limit, unless it is
    C{small} or nothing else is held (so one message of any allowed size always goes).

    @ivar used: the bytes held now.
    """

    def __init__(self, limit: int, small: int = 64 * 1024) -> None:
        self.limit = limit
        self.small = small
        self.used = 0

    def admits(self, size: int, held: int = 0) -> bool:
        """Whether C{size} more bytes may be held now by a holder that holds C{held} already."""
        total = held + size
        return total <= self.small or self.used == held or self.used + size <= self.limit

    def busy(self) -> str:
        """The text of a C{503} for want of room."""
        return (f"Busy: {self.used} bytes of messages in flight "
                f"(bridge_max_inflight_bytes is {self.limit}); retry")  # fmt: skip

    def fits(self, size: int) -> bool:
        """Whether C{size} more bytes fit under the limit (or nothing is held): no small exemption."""
        return not self.used or self.used + size <= self.limit

    def take(self, size: int) -> None:
        """Hold C{size} more bytes."""
        self.used += size

    def give(self, size: int) -> None:
        """Release C{size} bytes."""
        self.used -= size


class LimitedRequest(Request):
    """
    A request that refuses an oversized body as it arrives and counts itself while handled; a
    request of a streamed route gets a L{StreamedBody} (C{streamed_body}) instead of C{content}.
    """

    _counted = False
    streamed_body: StreamedBody | None = None
    _received = False
    #: body bytes this request holds in the site's L{InflightBytes} (given back when it ends)
    body_held = 0
    _inflight: InflightBytes | None = None
    _declared: int | None = None

    def gotLength(self, length: int | None) -> None:
        self._body_bytes = 0
        self._declared = length
        site = _site(self)
        limit = site.limits.max_body
        if length is not None and length > limit:
            self._refuse_body(length)
            return
        channel = self.channel
        if (
            length is not None
            and length >= site.limits.stream_threshold
            and isinstance(channel, LimitedChannel)
            and channel.streamed_route()
        ):
            expect = self.requestHeaders.getRawHeaders(b"Expect")
            continues = expect is not None and expect[0].lower() == b"100-continue"
            if continues:
                self.requestHeaders.removeHeader(b"Expect")  # sent when the body is wanted
            self.streamed_body = StreamedBody(channel, length, continues)
            self.content = BytesIO()
            return
        if length and not self._hold_body(length, length):
            return
        super().gotLength(length)

    def _hold_body(self, size: int, declared: int | None) -> bool:
        """
        Count C{size} more stored body bytes in the site's L{InflightBytes}; if it has no room,
        answer C{503} (reading a declared body to its end first) and return False.
        """
        inflight = _site(self).inflight
        if inflight is None:
            return True
        if not inflight.admits(size, self.body_held):
            site = _site(self)
            site.refusals.event(_peer(self.channel), "bridge_max_inflight_bytes reached")
            self._refused = True
            channel = self.channel
            if isinstance(channel, LimitedChannel):
                channel.refuse(503, "Service Unavailable", inflight.busy(), discard=declared,
                               retry_after=True)  # fmt: skip
            return False
        inflight.take(size)
        self._inflight = inflight
        self.body_held += size
        return True

    def release_body(self) -> None:
        """Give back what the stored body held (the request is over, or its connection)."""
        if self._inflight is not None and self.body_held:
            self._inflight.give(self.body_held)
            self.body_held = 0

    def handleContentChunk(self, data: bytes) -> None:
        if getattr(self, "_refused", False):
            return
        self._body_bytes += len(data)
        limit = _site(self).limits.max_body
        if self._body_bytes > limit:
            self._refuse_body(None)
            return
        if self.streamed_body is not None:
            self.streamed_body.data(data)
            return
        if self._declared is None and self._body_bytes > self.body_held:  # chunked: count as it comes
            if not self._hold_body(self._body_bytes - self.body_held, None):
                return
        super().handleContentChunk(data)

    def finish(self) -> None:
        super().finish()
        self.release_body()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._received:  # a streamed request, handled since its head: its body is all in
            assert self.streamed_body is not None
            self.streamed_body.ended()
            return
        self._received = True
        super().requestReceived(command, path, version)

    def write(self, data: bytes) -> None:
        body = self.streamed_body
        if body is not None and getattr(self.channel, "_closing", False):
            return  # the channel answered already (408) and is closing
        if body is not None and not body.complete and not self.startedWriting:
            self.setHeader(b"Connection", b"close")  # the rest of the body is not read
        super().write(data)

    def connectionLost(self, reason: Failure) -> None:
        self.release_body()
        super().connectionLost(reason)
        if self.streamed_body is not None:
            self.streamed_body.lost(f"the client went away ({reason.getErrorMessage()})")

    def _refuse_body(self, length: int | None) -> None:
        """Answer 413 now, store nothing more, and close the connection."""
        self._refused = True
        site = _site(self)
        size = f"{length} bytes" if length is not None else "more than that"
        message = f"Message too large: {size} (max_message_size is {site.limits.max_body})"
        site.refusals.event(_peer(self.channel), "body over max_message_size")
        channel = self.channel
        if isinstance(channel, LimitedChannel):
            # A declared body is read and thrown away, so the client gets to read the 413.
            channel.refuse(413, "Payload Too Large", message, discard=length)

    def process(self) -> None:
        site = _site(self)
        try:
            unquote_to_bytes(self.path).decode("utf-8")
        except UnicodeDecodeError:  # Klein would log a traceback for each
            self._answer(400, "Non-UTF-8 encoding in URL")
            return
        if site.active_requests >= site.limits.max_requests:
            site.refusals.event(_peer(self.channel), "too many concurrent requests")
            self.setHeader(b"Retry-After", b"1")
            self._answer(503, f"Too many concurrent requests (bridge_max_requests is {site.limits.max_requests})")
            return
        site.active_requests += 1
        self._counted = True
        self._site = site  # the channel is gone once the request finishes
        self.notifyFinish().addBoth(self._done)
        super().process()

    def _answer(self, code: int, message: str) -> None:
        body = message.encode("utf-8") + b"\n"
        self.setResponseCode(code)
        self.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        self.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
        self.write(body)
        self.finish()

    def _done(self, _: Any) -> None:
        if self._counted:
            self._counted = False
            self._site.active_requests -= 1


class LimitedChannel(HTTPChannel):
    """An C{HTTPChannel} with absolute deadlines for a request's head and body."""

    _deadline: IDelayedCall | None = None
    _closing = False
    #: when it started waiting for a request head (None while a request is read or handled)
    waiting_since: float | None = None
    #: when the head of a request whose body is being stored arrived (None otherwise)
    body_since: float | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        transport = self.transport
        if transport is not None and hasattr(transport, "bufferSize"):
            # Reads of, and a write buffer paused at, 16 KiB rather than 64 (Twisted's default):
            # what a connection that does not read its answers holds is a few times this.
            transport.bufferSize = CONNECTION_BUFFER
        site = _site_of_channel(self)
        site.channels.add(self)
        self._arm(site.limits.header_timeout, "request head")

    def allHeadersReceived(self) -> None:
        super().allHeadersReceived()
        if self._closing:
            return
        site = _site_of_channel(self)
        self._arm(site.limits.body_timeout, "request body")
        request = self.requests[-1]
        if getattr(request, "streamed_body", None) is not None:
            # Handled now; its route reads the body as it arrives.
            request.requestReceived(self._command, self._path, self._version)
        elif self.length:
            self.body_since = site.reactor.seconds()

    def streamed_route(self) -> bool:
        """Whether the request whose head was just read is of one of the site's streamed routes."""
        path = self._path.split(b"?", 1)[0]
        return (self._command, path) in _site_of_channel(self).streamed

    def allContentReceived(self) -> None:
        if self._closing:  # refused (413 or 408): the request is not handled
            return
        self._disarm()
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        body = getattr(request, "streamed_body", None)
        if body is not None and not body.complete:
            # Answered before its body was all read: throw the rest away, then close (without
            # waiting for a body the client holds back for its 100 Continue).
            body.abandon()
            self.requests.remove(request)
            self.persistent = False
            if not self._closing:
                self._drain(0 if body.awaiting_continue else body.length - body.received)
            return
        # Armed before Twisted replays pipelined bytes: a whole head there re-arms for its body.
        if not self._closing:
            self._arm(_site_of_channel(self).limits.header_timeout, "request head")
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disarm()
        _site_of_channel(self).channels.discard(self)
        super().connectionLost(reason)

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full: besides what Twisted does (stop reading the
        socket), stop parsing the pipelined requests already read, so a client that does not
        read its answers cannot make us answer a whole socket read's worth of them into the
        buffer (C{LineReceiver}'s C{paused}).
        """
        super().pauseProducing()
        self.paused = True
        if self._handlingRequest:
            # Twisted leaves the socket read when the buffer fills during a request; a request
            # answered at once would then let the next reads pile up unparsed.
            self._networkProducer.pauseProducing()

    def resumeProducing(self) -> None:
        """The write buffer drained: carry on with the pipelined requests already read."""
        super().resumeProducing()
        if self.paused and self.transport is not None:
            self.paused = False
            self.dataReceived(b"")

    def refuse(
        self, code: int, reason: str, message: str, discard: int | None = None, retry_after: bool = False
    ) -> None:
        """
        Write an error response and close (abort if it is not taken in time). With C{discard},
        first read and throw away that many more bytes (a declared body, so that the client
        finishes sending and reads the response), within the body deadline. With
        C{retry_after}, the response says C{Retry-After: 1}.
        """
        if self._closing or self.transport is None:
            return
        self.transport.write(_raw_response(code, reason, message, retry_after))
        self._drain(discard or 0)

    def _drain(self, discard: int) -> None:
        """Handle nothing more: read and throw away C{discard} bytes (within the body deadline), then close."""
        if self.transport is None:
            return
        self._closing = True
        self._disarm()
        self.setRawMode()
        if discard > 0:
            self._discard_left = discard
            self.rawDataReceived = self.lineReceived = self._discard  # type: ignore[method-assign]
            self._deadline = self.callLater(_site_of_channel(self).limits.body_timeout, self._abort)
            self.transport.resumeProducing()  # type: ignore[attr-defined]
            return
        self.rawDataReceived = self.lineReceived = lambda *args: None  # type: ignore[method-assign]
        self._close()

    def _discard(self, data: bytes) -> None:
        self._discard_left -= len(data)
        if self._discard_left <= 0:
            self._disarm()
            self.rawDataReceived = self.lineReceived = lambda *args: None  # type: ignore[method-assign]
            self._close()

    def _close(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()
        self._deadline = self.callLater(_CLOSE_GRACE, self._abort)

    def _abort(self) -> None:
        self._deadline = None
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.callLater(seconds, lambda: self._expired(seconds, what))
        if what == "request head":
            self.waiting_since = _site_of_channel(self).reactor.seconds()

    def evict(self) -> None:
        """Close this connection (waiting for a head) to make room for a new one."""
        self.refuse(408, "Request Timeout", "Request timeout: connection closed to make room")

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self.waiting_since = None
        self.body_since = None

    def _expired(self, seconds: float, what: str) -> None:
        self._deadline = None
        _site_of_channel(self).refusals.event(_peer(self), f"no whole {what} within {seconds:g} s")
        self.refuse(408, "Request Timeout", f"Request timeout: no whole {what} within {seconds:g} s")
        for request in list(self.requests):
            body = getattr(request, "streamed_body", None)
            if body is not None:  # a streamed message that will not be completed: dropped
                body.lost(f"no whole request body within {seconds:g} s")


class LimitedSite(Site):
    """
    A C{Site} enforcing L{BridgeLimits}.

    @param streamed: the routes, C{(method, path)}, whose large bodies are read as they arrive
        (L{StreamedBody}).
    @param inflight: the bridge's L{InflightBytes}, which stored bodies count in as they arrive
        (None: they are not counted here).
    @ivar channels: the open connections.
    @ivar active_requests: requests being handled now.
    """

    protocol = LimitedChannel  # type: ignore[assignment]
    requestFactory = LimitedRequest

    def __init__(
        self,
        resource: Any,
        limits: BridgeLimits | None = None,
        clock: IReactorTime | None = None,
        streamed: Collection[tuple[bytes, bytes]] = (),
        inflight: InflightBytes | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(resource, reactor=clock, **kw)
        self.limits = limits if limits is not None else BridgeLimits()
        self.inflight = inflight
        self.streamed = frozenset(streamed)
        self.channels: set[LimitedChannel] = set()
        self.active_requests = 0
        self.refusals = AggregatedLog(self.reactor, log, "refused", "HTTP requests")

    def buildProtocol(self, addr: Any) -> Any:
        if len(self.channels) >= self.limits.max_connections:
            victim = self._victim()
            if victim is not None:
                self.channels.discard(victim)
                if victim._closing:  # answered already, only draining: gone at once
                    self.refusals.event(_peer(victim), "answered connection aborted to make room")
                    victim._abort()
                else:
                    self.refusals.event(_peer(victim), "slow or idle connection closed to make room")
                    victim.evict()
                return super().buildProtocol(addr)
            self.refusals.event(str(getattr(addr, "host", addr)), "too many connections")
            return _Refusal(
                _raw_response(503, "Service Unavailable",
                              f"Too many connections (bridge_max_connections is "
                              f"{self.limits.max_connections})")  # fmt: skip
            )
        return super().buildProtocol(addr)

    def _victim(self) -> LimitedChannel | None:
        """
        The connection that gives way to a new one at the cap: one already answered that only
        drains (a refused body), else the one waiting longest for a request head (idle or
        slowloris), else the one storing a body for the longest (a slow upload); never one
        whose request is being handled.
        """
        closing = [c for c in self.channels if c._closing]
        if closing:
            return closing[0]
        for since in ("waiting_since", "body_since"):
            waiting = [c for c in self.channels if getattr(c, since) is not None]
            if waiting:
                return min(waiting, key=lambda c: getattr(c, since) or 0.0)
        return None

    def stopFactory(self) -> None:
        self.refusals.stop()
        super().stopFactory()


class _Refusal(Protocol):
    """Answers a fixed response at once and closes (the connection cap is reached)."""

    def __init__(self, response: bytes) -> None:
        self._response = response

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._response)
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        pass


def _site(request: Request) -> LimitedSite:
    return _site_of_channel(request.channel)


def _site_of_channel(channel: Any) -> LimitedSite:
    site = channel.site
    assert isinstance(site, LimitedSite)
    return site


def _peer(channel: Any) -> str:
    transport = getattr(channel, "transport", None)
    peer = transport.getPeer() if transport is not None else None
    return str(getattr(peer, "host", peer))
