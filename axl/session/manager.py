# -*- test-case-name: tests.test_session_manager -*-
"""
The encrypted session layer (spec/yggdrasil-wire.md section 4): one L{Session} per remote key,
the outbound buffers of sessions being set up, and the init/ack/traffic dispatch.

Below it is an L{axl.interfaces.IRouter}; the router hands every packet addressed to us to
L{SessionManager.traffic_received}. Above it, decrypted payloads go to the C{deliver} callable
(the Yggdrasil core dispatch of L{axl.session.proto}).

Set-up: the payloads sent before a session exists wait in its buffer, in order, bounded per
remote (L{MAX_BUFFERED_PER_KEY}; the oldest give way) and in total (L{MAX_BUFFERED_PACKETS},
L{MAX_BUFFERED_BYTES}; new ones are refused), and go out in order once the ack (or the remote's
init) arrives. Traffic from a remote that already made its session from our init, arriving
before its ack (which waits in the remote's router for a path to us), is kept (at most
L{MAX_EARLY_TRAFFIC}) and opened once the ack is here; it is not answered with a throwaway init,
which would replace, in the same second, the keys the remote holds for us. The init and the ack
wait in the routers until the paths are found (the routers retry their lookups), so set-up never
waits for an upper layer to retransmit.

Limits (issue 12): an init or ack costs a Diffie-Hellman and a signature check, and traffic from
a key we have no session with is answered with an init (a signature and a Diffie-Hellman), so
both are limited by L{INIT_RATE} per remote key and L{INIT_TOTAL_RATE} in all; past them the
packet is dropped (counted in C{dropped_inits}). Sessions last 60 s without traffic, but a
remote that keeps sending keeps its session, so their number is capped too (L{MAX_SESSIONS}):
past it, the session idle longest among the L{EVICT_SAMPLE} held longest is forgotten (counted in
C{evicted_sessions}, logged aggregated; its remote's next packet gets an init, as after a
restart), so a flood of fresh keys can neither grow the table nor lock out new sessions. Remotes
waiting for a session (our sends before it is up) are capped by L{MAX_PENDING}; a send to a new
one past it is dropped, counted with the buffer drops.

Timers: each session and buffer has one C{DelayedCall} that fires when its 60 s could be up and
re-arms itself if there was activity meanwhile, so the per-packet cost of "reset the timer" is
one attribute store.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from itertools import islice
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from axl.crypto.keys import Identity, short_key
from axl.errors import DecodeError
from axl.interfaces import IRouter, ISessions
from axl.logs import observer as log_observer
from axl.ratelimit import DropCounter, KeyedLimiter
from axl.session.codec import (
    TYPE_ACK,
    TYPE_INIT,
    TYPE_TRAFFIC,
    SessionInit,
    decode_init,
    encode_init,
)
from axl.session.keys import BoxKeyPair, x25519_private, x25519_public
from axl.session.session import SESSION_TIMEOUT, Session

__all__ = [
    "INIT_BURST",
    "INIT_RATE",
    "INIT_TOTAL_BURST",
    "INIT_TOTAL_RATE",
    "MAX_BUFFERED_BYTES",
    "MAX_BUFFERED_PACKETS",
    "MAX_BUFFERED_PER_KEY",
    "MAX_EARLY_TRAFFIC",
    "MAX_PENDING",
    "MAX_SESSIONS",
    "EVICT_SAMPLE",
    "SessionManager",
    "Deliver",
]

#: Payloads kept per remote until its session is up (the oldest give way).
MAX_BUFFERED_PER_KEY = 64
#: Payloads kept for all remotes together (new ones are refused beyond it).
MAX_BUFFERED_PACKETS = 2048
#: Payload bytes kept for all remotes together (new ones are refused beyond it).
MAX_BUFFERED_BYTES = 1024 * 1024
#: Traffic packets kept per remote that arrive before its ack (opened once it is here).
MAX_EARLY_TRAFFIC = 8
#: Inits/acks handled (and inits sent in answer to unknown traffic) per remote key per second.
INIT_RATE = 4.0
INIT_BURST = 16.0
#: The same for all keys together.
INIT_TOTAL_RATE = 200.0
INIT_TOTAL_BURST = 400.0
#: Sessions held at most (~2.2 KiB each, C{bench/bench_tree_flood.py}). The init limit lets fresh
#: keys create about 12,400 in one L{SESSION_TIMEOUT}: under such a flood, idle ones give way.
MAX_SESSIONS = 512
#: Sessions looked at to pick the one to forget when L{MAX_SESSIONS} are held.
EVICT_SAMPLE = 16
#: Remotes with payloads waiting for a session at most.
MAX_PENDING = 128

Deliver = Callable[[bytes, bytes], None]
"""C{deliver(source_key, payload)}: a decrypted payload from the full key C{source_key}."""


class _Buffer:
    """The keys, init and waiting payloads (in order) for a remote with no session yet."""

    __slots__ = ("current", "next", "init", "data", "size", "early", "last_write", "timer")

    def __init__(self, now: float) -> None:
        self.current = BoxKeyPair.generate()
        self.next = BoxKeyPair.generate()
        self.init = SessionInit(self.current.public, self.next.public, 0, int(now))
        self.data: deque[bytes] = deque()
        self.size = 0
        self.early: list[bytes] = []  # traffic that arrived before the remote's ack
        self.last_write = now
        self.timer: IDelayedCall | None = None


@implementer(ISessions)
class SessionManager:
    """
    The session layer of one node.

    @ivar deliver: where decrypted payloads go; settable after construction (wiring is bottom-up).
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        identity: Identity,
        router: IRouter,
        clock: IReactorTime,
        deliver: Deliver | None = None,
    ) -> None:
        self._identity = identity
        self._router = router
        self._clock = clock
        self._x_private = x25519_private(identity.private_key)
        self.deliver: Deliver | None = deliver
        self._sessions: dict[bytes, Session] = {}
        self.drops: Counter[str] = Counter()  # packets dropped, by reason (for /metrics)
        self._timers: dict[bytes, IDelayedCall] = {}
        self._buffers: dict[bytes, _Buffer] = {}
        self._init_limit = KeyedLimiter(clock, INIT_RATE, INIT_BURST,
                                        total_rate=INIT_TOTAL_RATE, total_burst=INIT_TOTAL_BURST)  # fmt: skip
        #: inits, acks and unknown-traffic answers dropped by the limits
        self.dropped_inits = 0
        #: payloads kept per remote until its session is up (Go keeps 1: the newest)
        self.max_buffered_per_key = MAX_BUFFERED_PER_KEY
        #: payloads and bytes waiting in buffers, and payloads dropped by the limits so far
        self.buffered_packets = 0
        self.buffered_bytes = 0
        #: sessions held and remotes waiting at most (L{MAX_SESSIONS}, L{MAX_PENDING})
        self.max_sessions = MAX_SESSIONS
        self.max_pending = MAX_PENDING
        self._evictions = DropCounter(
            clock,
            self.log,
            "forgot {n} idle sessions to make room for new ones ({max} sessions held at most)",
            interval=60.0,
            max=MAX_SESSIONS,
        )
        self._drops = DropCounter(
            clock,
            self.log,
            "dropped {n} payloads waiting for sessions (limits: {per} per remote, {total} "
            "payloads, {size} bytes in total)",
            per=MAX_BUFFERED_PER_KEY,
            total=MAX_BUFFERED_PACKETS,
            size=MAX_BUFFERED_BYTES,
        )

    # -- SessionHost ----------------------------------------------------------------------

    def now(self) -> float:
        """L{SessionHost.now<axl.session.session.SessionHost.now>}: the injected clock's time."""
        return self._clock.seconds()

    def send_packet(self, remote: bytes, data: bytes) -> None:
        """
        Hand C{data} to the router
        (L{SessionHost.send_packet<axl.session.session.SessionHost.send_packet>}).
        """
        self._router.send(remote, data)

    def send_init(self, remote: bytes, packet_type: int, init: SessionInit) -> None:
        """
        L{SessionHost.send_init<axl.session.session.SessionHost.send_init>}: encrypt the init (1) or
        ack (2) for C{remote} and send it; a C{remote} key with no X25519 form is not sent to
        (logged at debug level).
        """
        try:
            packet = encode_init(packet_type, init, self._identity, x25519_public(remote))
        except DecodeError as e:
            self.log.debug("cannot send an init to {key}: {err}", key=short_key(remote), err=e)
            return
        self._router.send(remote, packet)

    # -- ISessions ------------------------------------------------------------------------

    def send(self, dest_key: bytes, plaintext: bytes) -> None:
        """Encrypt C{plaintext} to C{dest_key}, or buffer it and send an init if no session."""
        session = self._sessions.get(dest_key)
        if session is not None:
            self._router.send(dest_key, session.encrypt(plaintext))
            return
        buf = self._buffers.get(dest_key)
        now = self._clock.seconds()
        if buf is None:
            if len(self._buffers) >= self.max_pending:
                self._drops.add(1)
                return
            buf = self._buffers[dest_key] = _Buffer(now)
            buf.timer = self._clock.callLater(SESSION_TIMEOUT, self._buffer_timeout, dest_key, buf)
        self._buffer(buf, plaintext)
        buf.last_write = now
        self.send_init(dest_key, TYPE_INIT, buf.init)

    def _buffer(self, buf: _Buffer, plaintext: bytes) -> None:
        if len(buf.data) >= self.max_buffered_per_key:
            old = buf.data.popleft()
            buf.size -= len(old)
            self.buffered_packets -= 1
            self.buffered_bytes -= len(old)
            self._drops.add(1)
        size = len(plaintext)
        if (
            self.buffered_packets >= MAX_BUFFERED_PACKETS
            or self.buffered_bytes + size > MAX_BUFFERED_BYTES
        ):
            self._drops.add(1)
            return
        buf.data.append(plaintext)
        buf.size += size
        self.buffered_packets += 1
        self.buffered_bytes += size

    def _unbuffer(self, buf: _Buffer) -> list[bytes]:
        data = list(buf.data)
        self.buffered_packets -= len(data)
        self.buffered_bytes -= buf.size
        buf.data.clear()
        buf.size = 0
        return data

    @property
    def buffer_dropped(self) -> int:
        """Payloads (and early traffic) dropped so far by the limits or the buffer timeout."""
        return self._drops.total

    # -- from the router ------------------------------------------------------------------

    def traffic_received(self, source_key: bytes, data: bytes) -> None:
        """One encrypted-layer packet from C{source_key} (the router's C{on_traffic})."""
        if not data:
            return
        kind = data[0]
        if kind == TYPE_TRAFFIC:
            self._handle_traffic(source_key, data)
        elif kind == TYPE_INIT or kind == TYPE_ACK:
            if not self._init_limit.allow(source_key):
                self.dropped_inits += 1
                return
            try:
                init = decode_init(data, self._x_private, source_key)
            except DecodeError as e:
                self.drops["session_init_invalid"] += 1
                self.log.debug(
                    "dropped init/ack from {key}: {err}", key=short_key(source_key), err=e
                )
                return
            self._handle_init(source_key, init, is_ack=kind == TYPE_ACK)

    def _handle_init(self, source: bytes, init: SessionInit, is_ack: bool) -> None:
        session = self._sessions.get(source)
        buf = None
        is_old = session is not None
        if session is None:
            buf = self._buffers.pop(source, None)
            pairs = None
            if buf is not None:
                if buf.timer is not None and buf.timer.active():
                    buf.timer.cancel()
                pairs = (BoxKeyPair.generate(), buf.current, buf.next)
            try:
                session = Session(self, source, init.current, init.next, init.seq, pairs)
            except DecodeError as e:
                self.drops["session_init_invalid"] += 1
                self.log.debug("dropped init from {key}: {err}", key=short_key(source), err=e)
                if buf is not None:
                    self._buffers[source] = buf
                    buf.timer = self._clock.callLater(0, self._buffer_timeout, source, buf)
                return
            self._add_session(session)
        if is_ack and is_old:
            session.handle_ack(init)
        else:
            session.handle_init(init)
        if buf is not None:
            for data in self._unbuffer(buf):
                self._router.send(source, session.encrypt(data))
            early, buf.early = buf.early, []
            for packet in early:
                self._handle_traffic(source, packet)

    def _handle_traffic(self, source: bytes, data: bytes) -> None:
        session = self._sessions.get(source)
        if session is None:
            buf = self._buffers.get(source)
            if buf is not None:
                # We are setting up a session the remote already has (its ack to our init is
                # on its way): keep the packet to open once the ack is here.
                if len(buf.early) < MAX_EARLY_TRAFFIC:
                    buf.early.append(data)
                else:
                    self._drops.add(1)
                return
            # Maybe a restart on our side: answer with an init whose keys we forget, so that
            # the remote's ack creates a session here (the self-healing path of section 4.5).
            if not self._init_limit.allow(source):
                self.dropped_inits += 1
                return
            now = int(self._clock.seconds())
            throwaway = SessionInit(
                BoxKeyPair.generate().public, BoxKeyPair.generate().public, 0, now
            )
            self.send_init(source, TYPE_INIT, throwaway)
            return
        try:
            payload = session.decrypt(data)
        except DecodeError as e:
            self.drops["session_traffic_invalid"] += 1
            self.log.debug("dropped traffic from {key}: {err}", key=short_key(source), err=e)
            return
        if payload is None or self.deliver is None:
            return
        try:
            self.deliver(source, payload)
        except Exception:
            self.log.failure("delivering a payload from {key}", key=short_key(source))

    # -- timers ---------------------------------------------------------------------------

    @property
    def evicted_sessions(self) -> int:
        """Sessions forgotten so far because L{MAX_SESSIONS} were held."""
        return self._evictions.total

    def _add_session(self, session: Session) -> None:
        key = session.remote
        if key not in self._sessions and len(self._sessions) >= self.max_sessions:
            self._evict()
        self._sessions[key] = session
        old = self._timers.pop(key, None)
        if old is not None and old.active():
            old.cancel()
        self._timers[key] = self._clock.callLater(
            SESSION_TIMEOUT, self._session_timeout, key, session
        )

    def _evict(self) -> None:
        """
        Forget the session idle longest among the L{EVICT_SAMPLE} held longest; the others of
        the sample go to the back (a clock-style approximation of least recently active).
        """
        sessions = self._sessions
        sample = list(islice(sessions, EVICT_SAMPLE))
        victim = min(sample, key=lambda k: sessions[k].last_active)
        for key in sample:
            if key != victim:
                sessions[key] = sessions.pop(key)
        del sessions[victim]
        timer = self._timers.pop(victim, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._evictions.add(1)

    def _session_timeout(self, key: bytes, session: Session) -> None:
        if self._sessions.get(key) is not session:
            return
        left = session.last_active + SESSION_TIMEOUT - self._clock.seconds()
        if left > 0:
            self._timers[key] = self._clock.callLater(left, self._session_timeout, key, session)
            return
        del self._sessions[key]
        del self._timers[key]
        self.log.debug("session with {key} timed out", key=short_key(key))

    def _buffer_timeout(self, key: bytes, buf: _Buffer) -> None:
        if self._buffers.get(key) is not buf:
            return
        left = buf.last_write + SESSION_TIMEOUT - self._clock.seconds()
        if left > 0:
            buf.timer = self._clock.callLater(left, self._buffer_timeout, key, buf)
            return
        del self._buffers[key]
        if buf.data:
            self._drops.add(len(buf.data))
            self._unbuffer(buf)

    def stop(self) -> None:
        """Forget every session and buffer and cancel their timers (the node is stopping)."""
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        for buf in self._buffers.values():
            if buf.timer is not None and buf.timer.active():
                buf.timer.cancel()
        self._timers.clear()
        self._sessions.clear()
        self._buffers.clear()
        self.buffered_packets = self.buffered_bytes = 0

    # -- introspection --------------------------------------------------------------------

    def session(self, key: bytes) -> Session | None:
        """The session with C{key}, if any (for tests and debug output)."""
        return self._sessions.get(key)

    def has_buffer(self, key: bytes) -> bool:
        """Whether data for C{key} is waiting for a session."""
        return key in self._buffers

    def sessions_info(self) -> list[dict[str, Any]]:
        """Go's C{GetSessions}: C{key} (hex), C{rx_bytes}, C{tx_bytes}, C{uptime} seconds."""
        now = self._clock.seconds()
        return [
            {
                "key": key.hex(),
                "rx_bytes": s.rx_bytes,
                "tx_bytes": s.tx_bytes,
                "uptime": now - s.since,
            }
            for key, s in self._sessions.items()
        ]
