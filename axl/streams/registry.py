# -*- test-case-name: tests.test_streams_registry -*-
"""
Dispatch of one inbound port-7000 message (spec/axl-node.md section 7.2).

Streams are tried in registration order and the first whose C{matches} says yes serves the
message; a message no stream claims goes to the C{/recv} queue. Beyond AXL:

 - a stream registered as disabled (e.g. MCP without C{router_addr}) still recognises its
   envelopes: the message is answered at once with an error envelope, so a remote caller does
   not wait out its deadline, and it is I{not} queued to C{/recv} (AXL queues it, where an
   application finds a stray JSON-RPC request; spec/axl-node.md section 13.18). Messages sent
   with C{/send} between axl nodes are never sniffed for envelopes (they use the acknowledged
   protocol, L{axl.streams.listener.AcknowledgedMessageProtocol});
 - a stream that fails, or takes longer than C{timeout}, is answered with an error envelope;
 - an optional allow-list of peer keys per stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.crypto.keys import short_key
from axl.logs import observer as log_observer
from axl.streams.envelope import parse_object
from axl.streams.errors import failure_reason
from axl.streams.interfaces import IStream
from axl.streams.recv_queue import RecvQueue

__all__ = ["StreamRegistry"]


@dataclass
class _Entry:
    stream: Any  # an IStream
    enabled: bool
    allowed: frozenset[bytes] | None


class StreamRegistry:
    """
    The ordered streams of one node and its C{/recv} queue.

    @param timeout: the longest a stream may take before the caller gets an error envelope; keep
        it below the callers' end-to-end deadline (C{request_timeout_secs}).
    """

    log = Logger(observer=log_observer)

    def __init__(
        self, queue: RecvQueue, clock: IReactorTime, timeout: float = 25.0
    ) -> None:
        self.queue = queue
        self._clock = clock
        self.timeout = timeout
        self._entries: list[_Entry] = []

    def add(
        self, stream: Any, enabled: bool = True, allowed: Iterable[bytes] | None = None
    ) -> None:
        """
        Register C{stream} after the ones already registered. C{allowed}: if given, only these
        peer keys may use it (others get an error envelope).
        """
        if not IStream.providedBy(stream):
            raise TypeError(f"{stream!r} does not provide IStream")
        if any(e.stream.name == stream.name for e in self._entries):
            raise ValueError(f"a stream named {stream.name!r} is already registered")
        self._entries.append(
            _Entry(stream, enabled, None if allowed is None else frozenset(allowed))
        )

    @property
    def names(self) -> list[str]:
        """The registered streams' names, in dispatch order."""
        return [e.stream.name for e in self._entries]

    def dispatch(
        self,
        payload: bytes,
        peer_key: bytes,
    ) -> Deferred[bytes | None]:
        """
        Deliver one message from C{peer_key}. Fires with the reply payload to write back on
        the same connection, or None; it fires only once the message is accepted (queued or
        served, or refused), so the caller stops reading more meanwhile.
        """
        envelope = parse_object(payload) if self._entries else None
        if envelope is not None:
            for entry in self._entries:
                try:
                    claimed = entry.stream.matches(envelope)
                except Exception:  # noqa: BLE001 - a plugin stream must not break dispatch
                    self.log.failure(
                        "stream {name} failed to match a message",
                        name=entry.stream.name,
                    )
                    continue
                if claimed:
                    return self._serve(entry, envelope, peer_key)
        return self.queue.put(peer_key, payload).addCallback(lambda _: None)

    def _serve(
        self,
        entry: _Entry,
        envelope: dict[str, Any],
        peer_key: bytes,
    ) -> Deferred[bytes | None]:
        stream = entry.stream
        if not entry.enabled:
            self.log.info(
                "{name} envelope from {peer} refused: {name} is not enabled on this node",
                name=stream.name,
                peer=short_key(peer_key),
            )
            return succeed(self._error(stream, envelope, f"{stream.name} not enabled on this node"))
        if entry.allowed is not None and peer_key not in entry.allowed:
            self.log.warn(
                "{name} request from {peer} refused (not in the allow-list)",
                name=stream.name,
                peer=short_key(peer_key),
            )
            return succeed(
                self._error(stream, envelope, f"{stream.name}: peer not allowed")
            )
        d: Deferred[bytes | None] = maybeDeferred(stream.handle, envelope, peer_key)
        d.addTimeout(self.timeout, self._clock)

        def failed(failure: Failure) -> bytes | None:
            if failure.check(DeferredTimeout):
                self.log.warn(
                    "stream {name} took over {t} s for a request from {peer}",
                    name=stream.name,
                    t=self.timeout,
                    peer=short_key(peer_key),
                )
                return self._error(
                    stream,
                    envelope,
                    f"{stream.name} timed out after {self.timeout:g} s",
                )
            self.log.failure(
                "stream {name} failed a request from {peer}",
                failure,
                name=stream.name,
                peer=short_key(peer_key),
            )
            return self._error(
                stream,
                envelope,
                f"{stream.name} failed: {failure_reason(failure)}",
            )

        return d.addErrback(failed)

    def _error(
        self, stream: Any, envelope: dict[str, Any], message: str
    ) -> bytes | None:
        try:
            reply: bytes | None = stream.error_reply(envelope, message)
        except Exception:  # noqa: BLE001 - a plugin stream must not break dispatch
            self.log.failure(
                "stream {name} could not build an error reply", name=stream.name
            )
            return None
        return reply
