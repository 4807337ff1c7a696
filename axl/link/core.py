# -*- test-case-name: tests.test_link_core -*-
"""
The sans-IO link core: one peering connection, from the first byte to the close.

Bytes in (L{LinkCore.data_received}) become a verified meta handshake and then ironwood frames,
which go up to an L{ILinkHandler}; frames going down (L{LinkCore.send_frame}) become bytes for the
injected C{write}. Timers run on an injected clock (spec/yggdrasil-wire.md sections 2.3-2.7):

 - the whole meta exchange must finish within 6 s of the connection (not reset by data);
 - after receiving a frame of type >= 2 a keepalive (C{01 01}) goes out within 1 s unless some
   other frame went out meanwhile;
 - after sending a frame of type >= 2 a 3 s read deadline is armed; any whole frame received
   clears it, and if none arrives the link is dropped.

Flow control (issue 12): while the transport says its write buffer is full (L{writes_blocked},
from Twisted's producer/consumer), the adapter stops reading from the peer, so a peer that makes
us answer cannot make us buffer more than it reads. Bytes written meanwhile are counted: past
C{write_buffer_max} Traffic frames are dropped (as ironwood drops packets on a full queue; TCP
above recovers), and past twice that the link is dropped, since the peer is not reading. All the
links of a node also share one L{WriteBudget} (C{link_write_budget_bytes}): Traffic frames are
dropped too while the links' waiting bytes together pass it, and a link that would take the total
past twice it is dropped, so the bytes waiting on all links stay under twice the budget whatever
the number of links.

Every decode error, refused handshake or bad frame drops this link only (logged at warn).

Why the lifecycle is a L{LinkState} field and not an automat machine (issue 18, item 6): it is
a straight line, IDLE -> HANDSHAKING -> UP -> CLOSED, where every input is legal in every state
(bytes after CLOSED are dropped, C{close} is idempotent) and the only per-state difference is
how C{data_received} parses (meta bytes, then frames). A typed automat machine would add no
transition the code lacks, and its dispatch costs ~0.9 us per input against ~0.1 us for the
state check (measured on the development machine): C{send_frame} runs once per ironwood frame
at ~1 us today (C{bench/bench_link.py}), so routing it through automat would nearly halve the
link's frame rate. The transports (tls, tcp, unix, quic, ws, socks) all feed this one core.
"""

from __future__ import annotations

import enum
import itertools
from typing import Callable, Iterable

from zope.interface import implementer

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from axl.crypto import Identity, short_key
from axl.errors import PeerFlooding, ProtocolError
from axl.interfaces import ILink, ILinkHandler
from axl.link.framing import PEER_MAX_MESSAGE_SIZE, FrameDecoder, FrameTooLarge, encode_frame
from axl.link.meta import META_HEADER_SIZE, decode_meta, encode_meta, meta_body_length
from axl.logs import observer as log_observer

__all__ = [
    "DEFAULT_WRITE_BUDGET",
    "DEFAULT_WRITE_BUFFER_MAX",
    "HANDSHAKE_TIMEOUT",
    "KEEPALIVE_DELAY",
    "PEER_TIMEOUT",
    "FRAME_DUMMY",
    "FRAME_KEEPALIVE",
    "MAX_FRAME_TYPE",
    "LinkState",
    "LinkCore",
    "NullLinkHandler",
    "WriteBudget",
]

HANDSHAKE_TIMEOUT = 6.0
KEEPALIVE_DELAY = 1.0
PEER_TIMEOUT = 3.0
FRAME_DUMMY = 0
FRAME_KEEPALIVE = 1
MAX_FRAME_TYPE = 9
_KEEPALIVE_FRAME = encode_frame(FRAME_KEEPALIVE)
#: Bytes a link may have written while its transport's buffer is full before Traffic frames are
#: dropped (twice this and the link is dropped).
DEFAULT_WRITE_BUFFER_MAX = 1024 * 1024
#: What all the links of a node may have written, together, while their transports' buffers are
#: full, before Traffic frames are dropped (twice this and the link adding more is dropped).
DEFAULT_WRITE_BUDGET = 8 * 1024 * 1024
# Ironwood's Traffic frame (axl/mesh/wire.py FRAME_TRAFFIC): the only type dropped on congestion.
_BULK_FRAME_TYPE = 9

# ironwood's link "order": a process-wide counter of links created (lower = older).
_order = itertools.count(1)


class LinkState(enum.Enum):
    """The stages of one link: built, meta handshake, exchanging frames, closed."""
    IDLE = "idle"  # built, not connected yet
    HANDSHAKING = "handshaking"
    UP = "up"
    CLOSED = "closed"


class WriteBudget:
    """
    The bytes all the links of one node have written while their transports' buffers were full
    (issue 12): one object shared by every L{LinkCore} of a L{axl.link.peers.PeerManager}.

    @ivar limit: past this total, Traffic frames are dropped on every blocked link; a frame that
        would take the total past twice it drops the link writing it.
    @ivar used: the bytes counted now (each link's C{blocked_bytes}, summed).
    """

    def __init__(self, limit: int = DEFAULT_WRITE_BUDGET) -> None:
        if limit <= 0:
            raise ValueError("the link write budget must be positive")
        self.limit = limit
        self.used = 0


@implementer(ILinkHandler)
class NullLinkHandler:
    """Accepts links and ignores frames of types 2-9: what the link layer needs before routing."""

    def link_up(self, link: ILink) -> None:
        pass

    def frame_received(self, link: ILink, frame_type: int, payload: bytes) -> None:
        pass

    def link_down(self, link: ILink) -> None:
        pass


@implementer(ILink)
class LinkCore:
    """
    One link. It implements L{ILink} once its handshake is done (state L{LinkState.UP}).

    @ivar remote_key: the peer's key, known after the handshake (b"" before).
    @ivar priority: max(local, remote) after the handshake.
    @ivar last_error: why the link was closed ("" while open or after a clean close).
    @ivar is_self: the peer turned out to be ourselves (the link is refused).
    @ivar flooded: the link was dropped for exceeding its limits (L{PeerFlooding}).
    @ivar dropped_frames: Traffic frames dropped because the peer did not read fast enough (or
        the links together had too much waiting).
    @ivar blocked_bytes: bytes written since the transport's buffer filled (counted in the
        shared L{WriteBudget} too).
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        *,
        identity: Identity,
        clock: IReactorTime,
        handler: ILinkHandler,
        uri: str,
        inbound: bool,
        priority: int = 0,
        password: bytes = b"",
        pinned_keys: Iterable[bytes] = (),
        allowed_keys: Iterable[bytes] = (),
        on_up: Callable[[LinkCore], None] | None = None,
        on_down: Callable[[LinkCore, str], None] | None = None,
        max_frame_size: int = PEER_MAX_MESSAGE_SIZE,
        write_buffer_max: int = DEFAULT_WRITE_BUFFER_MAX,
        write_budget: WriteBudget | None = None,
    ) -> None:
        self._identity = identity
        self._clock = clock
        self.handler = handler
        self.uri = uri
        self.inbound = inbound
        self.local_priority = priority
        self._password = password
        self._pinned = frozenset(pinned_keys)
        self._allowed = frozenset(allowed_keys)
        self._on_up = on_up
        self._on_down = on_down
        self._max_frame_size = max_frame_size
        self._meta = encode_meta(identity, priority, password)
        self.state = LinkState.IDLE
        self.remote_key = b""
        self.remote_priority = 0
        self.priority = priority
        self.order = 0
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.up_since: float | None = None
        self.last_error = ""
        self.is_self = False
        self.flooded = False
        self.dropped_frames = 0
        self._write_buffer_max = write_buffer_max
        self._budget = write_budget if write_budget is not None else WriteBudget()
        self._blocked = False
        self._blocked_bytes = 0
        self._write: Callable[[bytes], None] = _not_connected
        self._disconnect: Callable[[bool], None] = _not_connected
        self._hs_buf = bytearray()
        self._hs_need = META_HEADER_SIZE
        self._decoder = FrameDecoder(max_frame_size)
        self._handshake_timer: IDelayedCall | None = None
        self._keepalive_timer: IDelayedCall | None = None
        self._read_deadline: IDelayedCall | None = None

    def __repr__(self) -> str:
        return f"<LinkCore {self.uri} {self.state.value} {short_key(self.remote_key)}>"

    # -- inputs from the transport ---------------------------------------------------------

    def connection_made(
        self, write: Callable[[bytes], None], disconnect: Callable[[bool], None]
    ) -> None:
        """
        The byte stream is open: send our meta and start the handshake deadline.

        @param write: sends bytes to the peer.
        @param disconnect: closes the stream; its argument is True to abort (discard pending
            output) rather than close cleanly.
        """
        if self.state is not LinkState.IDLE:
            raise RuntimeError("connection_made called twice")
        self._write, self._disconnect = write, disconnect
        self.state = LinkState.HANDSHAKING
        self._handshake_timer = self._clock.callLater(HANDSHAKE_TIMEOUT, self._handshake_timeout)
        self._send_raw(self._meta)

    def data_received(self, data: bytes) -> None:
        """Bytes from the peer, in order."""
        if self.state is LinkState.CLOSED:
            return
        self.rx_bytes += len(data)
        try:
            if self.state is LinkState.HANDSHAKING:
                data = self._handshake_data(data)
                # _handshake_data may move the state on, which mypy's narrowing cannot see
                if self.state is not LinkState.UP or not data:  # type: ignore[comparison-overlap]
                    return
            self._frames_data(data)
        except ProtocolError as e:
            self._fail(str(e) or e.__class__.__name__)

    def writes_blocked(self) -> None:
        """The transport's write buffer is full (the adapter has stopped reading)."""
        self._blocked = True

    def writes_unblocked(self) -> None:
        """The transport's write buffer drained (the adapter reads again)."""
        self._blocked = False
        self._release_blocked()

    @property
    def blocked_bytes(self) -> int:
        """Bytes written since the transport's buffer filled (0 when it is not full)."""
        return self._blocked_bytes

    def _release_blocked(self) -> None:
        self._budget.used -= self._blocked_bytes
        self._blocked_bytes = 0

    def connection_lost(self, reason: str = "connection lost") -> None:
        """The byte stream is gone (for whatever reason)."""
        if self.state is not LinkState.CLOSED:
            self.log.debug("link {uri} closed by the peer or the network: {reason}",
                          uri=self.uri, reason=reason)  # fmt: skip
            self._finish(reason)

    # -- ILink -----------------------------------------------------------------------------

    def send_frame(self, frame_type: int, payload: bytes = b"") -> None:
        """Send one frame; an oversized frame is dropped (logged), as ironwood does."""
        if self.state is not LinkState.UP:
            self.log.debug("not sending a type {type} frame on {uri}: link is {state}",
                           type=frame_type, uri=self.uri, state=self.state.value)  # fmt: skip
            return
        try:
            frame = encode_frame(frame_type, payload, self._max_frame_size)
        except FrameTooLarge as e:
            self.log.warn("dropping an outgoing type {type} frame on {uri}: {err}",
                          type=frame_type, uri=self.uri, err=str(e))  # fmt: skip
            return
        if self._blocked:
            waiting = self._blocked_bytes + len(frame)
            total = self._budget.used + len(frame)
            if frame_type == _BULK_FRAME_TYPE and (
                waiting > self._write_buffer_max or total > self._budget.limit
            ):
                self.dropped_frames += 1
                return
            if waiting > 2 * self._write_buffer_max:
                self._fail(f"peer is not reading ({waiting} bytes waiting to be sent)")
                return
            if total > 2 * self._budget.limit:
                self._fail(f"peer is not reading and the links have {total} bytes waiting in all")
                return
            self._blocked_bytes = waiting
            self._budget.used = total
        self._send_raw(frame)
        if frame_type > FRAME_KEEPALIVE and self._read_deadline is None:
            self._read_deadline = self._clock.callLater(PEER_TIMEOUT, self._peer_timeout)

    def close(self, reason: str = "closed locally") -> None:
        """Close the link cleanly (pending output is flushed first)."""
        if self.state is LinkState.CLOSED:
            return
        self.log.info("closing link {uri}: {reason}", uri=self.uri, reason=reason)
        if self.state is not LinkState.IDLE:
            self._disconnect(False)
        self._finish(reason)

    # -- internals -------------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        """Whether the handshake succeeded and the link is not closed yet."""
        return self.state is LinkState.UP

    def uptime(self) -> float:
        """Seconds since the handshake completed (0 when not up)."""
        if self.up_since is None or self.state is not LinkState.UP:
            return 0.0
        return float(self._clock.seconds() - self.up_since)

    def _send_raw(self, data: bytes) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        self.tx_bytes += len(data)
        self._write(data)

    def _handshake_data(self, data: bytes) -> bytes:
        """Consume meta bytes; return what follows the meta message (frames)."""
        buf = self._hs_buf
        buf += data
        if len(buf) < self._hs_need:
            return b""
        if self._hs_need == META_HEADER_SIZE:
            self._hs_need = META_HEADER_SIZE + meta_body_length(buf)
            if len(buf) < self._hs_need:
                return b""
        message, rest = bytes(buf[: self._hs_need]), bytes(buf[self._hs_need :])
        self._hs_buf = bytearray()
        meta = decode_meta(message, self._password)
        key = meta.public_key
        if key == self._identity.public_key:
            self.is_self = True
            raise ProtocolError("the peer is ourselves (same public key)")
        if self._pinned and key not in self._pinned:
            raise ProtocolError(f"remote key {short_key(key)} is not the pinned key= value")
        if self.inbound and self._allowed and key not in self._allowed:
            raise ProtocolError(f"remote key {short_key(key)} is not in AllowedPublicKeys")
        self._become_up(key, meta.priority)
        return rest

    def _become_up(self, key: bytes, remote_priority: int) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.remote_key = key
        self.remote_priority = remote_priority
        self.priority = max(self.local_priority, remote_priority)
        self.order = next(_order)
        self.state = LinkState.UP
        self.up_since = self._clock.seconds()
        self.log.debug("link {uri} up: peer {key}, {direction}, priority {priority}",
                      uri=self.uri, key=short_key(key), priority=self.priority,
                      direction="inbound" if self.inbound else "outbound")  # fmt: skip
        if self._on_up is not None:
            self._on_up(self)
        if self.state is LinkState.UP:
            self._call_handler(self.handler.link_up, self)

    def _frames_data(self, data: bytes) -> None:
        for frame_type, payload in self._decoder.feed(data):
            if self.state is not LinkState.UP:
                return
            if self._read_deadline is not None:
                self._read_deadline.cancel()
                self._read_deadline = None
            if frame_type <= FRAME_KEEPALIVE:
                continue
            if frame_type > MAX_FRAME_TYPE:
                raise ProtocolError(f"unrecognised frame type {frame_type}")
            if self._keepalive_timer is None:
                self._keepalive_timer = self._clock.callLater(KEEPALIVE_DELAY, self._keepalive)
            self._call_handler(self.handler.frame_received, self, frame_type, payload)

    def _call_handler(self, method: Callable[..., None], *args: object) -> None:
        """Call the upper layer; its ProtocolError (or a bug) drops this link only."""
        try:
            method(*args)
        except PeerFlooding as e:
            self.flooded = True
            self._fail(f"flooding: {e}")
        except ProtocolError as e:
            self._fail(f"rejected by the router: {e}")
        except Exception:
            self.log.failure("link handler failed on {uri}; dropping the link", uri=self.uri)
            self._fail("internal error in the link handler")

    def _keepalive(self) -> None:
        self._keepalive_timer = None
        if self.state is LinkState.UP:
            self._send_raw(_KEEPALIVE_FRAME)

    def _handshake_timeout(self) -> None:
        self._handshake_timer = None
        self._fail(f"handshake not finished within {HANDSHAKE_TIMEOUT:g} s")

    def _peer_timeout(self) -> None:
        self._read_deadline = None
        self._fail(f"peer sent nothing for {PEER_TIMEOUT:g} s after our last frame")

    def _fail(self, reason: str) -> None:
        if self.state is LinkState.CLOSED:
            return
        # A failed inbound handshake is counted by the peer manager (aggregated), not logged here.
        level = self.log.debug if self.inbound and self.state is not LinkState.UP else self.log.warn
        level("dropping link {uri} ({key}): {reason}",
              uri=self.uri, key=short_key(self.remote_key), reason=reason)  # fmt: skip
        self.last_error = reason
        self._disconnect(True)
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.state is LinkState.CLOSED:
            return
        was_up = self.state is LinkState.UP
        self.state = LinkState.CLOSED
        for timer in (self._handshake_timer, self._keepalive_timer, self._read_deadline):
            if timer is not None and timer.active():
                timer.cancel()
        self._handshake_timer = self._keepalive_timer = self._read_deadline = None
        self._hs_buf = bytearray()
        self._release_blocked()  # an aborted transport drops its buffer
        if was_up:
            try:
                self.handler.link_down(self)
            except Exception:
                self.log.failure("link handler failed in link_down for {uri}", uri=self.uri)
        if self._on_down is not None:
            self._on_down(self, reason)


def _not_connected(*args: object) -> None:
    raise RuntimeError("the link is not connected yet")
