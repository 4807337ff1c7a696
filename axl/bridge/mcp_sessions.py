# -*- test-case-name: tests.test_bridge_mcp -*-
"""
The bridge's MCP sessions (C{Mcp-Session-Id} on C{/mcp/{peer}/{service}}).

Unlike AXL's (one process-wide set of guessable, immortal ids usable with any peer), a session
here has a random id, belongs to one C{(peer, service)} pair, and expires after C{ttl} seconds
without use. It remembers the remote MCP server's own session id (carried back in the reply
envelope's C{headers}) so that stateful MCP servers work across the mesh.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

__all__ = ["McpSessionEntry", "McpSessions"]


@dataclass
class McpSessionEntry:
    """
    One session of L{McpSessions}: its id (given to the local client), its target, and the
    remote's own id.
    """

    id: str
    peer: bytes
    service: str
    last_used: float
    remote_id: str | None = None


class McpSessions:
    """
    @param entropy: C{entropy(n)} -> C{n} random bytes (injectable for tests).
    @param max_sessions: a bound on live sessions; the least recently used goes first.
    """

    def __init__(
        self,
        clock: IReactorTime,
        ttl: float = 3600.0,
        entropy: Callable[[int], bytes] = os.urandom,
        max_sessions: int = 10000,
    ) -> None:
        self._clock = clock
        self.ttl = ttl
        self._entropy = entropy
        self.max_sessions = max_sessions
        self._sessions: dict[str, McpSessionEntry] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, peer: bytes, service: str) -> McpSessionEntry:
        """A new session for C{(peer, service)}."""
        self._sweep()
        while len(self._sessions) >= self.max_sessions:
            oldest = min(self._sessions.values(), key=lambda s: s.last_used)
            del self._sessions[oldest.id]
        session_id = self._entropy(16).hex()
        session = McpSessionEntry(session_id, peer, service, self._clock.seconds())
        self._sessions[session_id] = session
        return session

    def lookup(self, session_id: str, peer: bytes, service: str) -> McpSessionEntry | None:
        """The live session C{session_id} of C{(peer, service)}, or None; using it renews it."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock.seconds()
        if now - session.last_used > self.ttl:
            del self._sessions[session_id]
            return None
        if session.peer != peer or session.service != service:
            return None
        session.last_used = now
        return session

    def delete(self, session_id: str, peer: bytes, service: str) -> bool:
        """End a session; whether it existed (for this peer and service)."""
        if self.lookup(session_id, peer, service) is None:
            return False
        del self._sessions[session_id]
        return True

    def _sweep(self) -> None:
        limit = self._clock.seconds() - self.ttl
        for session_id in [
            s.id for s in self._sessions.values() if s.last_used < limit
        ]:
            del self._sessions[session_id]
