# -*- test-case-name: tests.test_tcp_connection -*-
"""
What both halves of a TCP connection share: the RFC 9293 states, the tunables
(L{TCPConfig}), the app-facing events (L{AppEvents}) and the segment emitter type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CLOSED", "CLOSE_WAIT", "CLOSING", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "LAST_ACK",
    "STATE_NAMES", "SYN_RCVD", "SYN_SENT", "TIME_WAIT", "AppEvents", "Emit", "RcvBudget",
    "TCPConfig",
]

(CLOSED, SYN_SENT, SYN_RCVD, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK,
 TIME_WAIT) = range(10)
STATE_NAMES = ("CLOSED", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
               "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT")
SENDING = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK))
RECEIVING = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))
DEFAULT_IPV6_MSS = 1220  # RFC 9293 3.7.1: assume this when an IPv6 peer sends no MSS option


@dataclass(frozen=True)
class TCPConfig:
    """Tunables; defaults suit the overlay (65535-byte MTU)."""

    mtu: int = 65535
    rcv_buf: int = 4 * 1024 * 1024      # the receive window to start with,
    rcv_buf_max: int = 16 * 1024 * 1024  # grown while the app keeps up, up to this (auto-tuning)
    rcv_budget: int = 8 * 1024 * 1024  # stack-wide (the node passes tcp_rcv_budget_bytes): bytes held undelivered (L{RcvBudget})
    snd_buf: int = 1024 * 1024          # a producer is paused above this many unacked bytes,
    snd_buf_max: int = 16 * 1024 * 1024  # or above twice the flight the windows allow, up to this
    initial_rto: float = 1.0
    min_rto: float = 0.2
    max_rto: float = 60.0
    max_retries: int = 12               # consecutive RTO expiries before giving up
    syn_retries: int = 6
    delayed_ack: float = 0.04
    time_wait: float = 60.0             # 2 * MSL
    fin_wait_2: float = 60.0
    initial_window: int = 10            # segments (RFC 6928; no byte cap, as Linux)

    @property
    def advertised_mss(self) -> int:
        """The MSS we advertise: MTU minus the IPv6 and TCP headers."""
        return min(self.mtu - 60, 65535)


class RcvBudget:
    """
    The bytes a whole stack holds received but not delivered (C{used}), and the most it may
    (C{limit}): in-order data of connections whose apps paused reading, and out-of-order data
    (above a gap, L{axl.tcp.reassembly.OutOfOrderQueue}, with a per-segment cost for its
    bookkeeping) of every connection. Whatever remote peers send, on however many
    connections, the stack holds at most C{limit} of it.

      - A paused connection's window is cut to what is left (L{free}), down to zero, and
        in-order data beyond it is dropped unacknowledged.
      - An out-of-order segment the budget cannot take is dropped whole, neither acknowledged
        nor SACKed (the sender retransmits it; we never SACK data we do not hold).
      - In-order data of a connection whose app reads is delivered at once and never charged:
        so a reading connection always makes progress, even while others (a peer that leaves
        gaps open on many connections) hold the whole budget. It then loses only its own
        out-of-order data, which its sender retransmits after the gap fills (NewReno without
        SACK blocks: slower, not stuck). There is no per-connection share: an attacker would
        open more connections (keys are cheap), and one long fat connection's SACK recovery
        may rightly need most of the budget.

    Charges come back when the data leaves: delivered to the app, the gap below it filled
    (out-of-order data moves to the in-order side, charged there if the app is paused), or the
    connection ended in any way (L{axl.tcp.connection.Connection._finish}).
    """

    __slots__ = ("limit", "used", "dropped", "on_drop")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.dropped = 0                    # bytes dropped for want of budget, in all
        #: told C{(peer key, bytes, why)} on each drop (the stack logs them aggregated)
        self.on_drop: Callable[[bytes, int, str], None] | None = None

    def charge(self, nbytes: int) -> None:
        """C{nbytes} more are held (the caller checked L{free})."""
        self.used += nbytes

    def release(self, nbytes: int) -> None:
        """C{nbytes} held are not any more."""
        self.used -= nbytes

    def drop(self, peer_key: bytes, nbytes: int, why: str) -> None:
        """Count C{nbytes} from C{peer_key} dropped unacknowledged, for reason C{why}."""
        self.dropped += nbytes
        if self.on_drop is not None:
            self.on_drop(peer_key, nbytes, why)

    @property
    def free(self) -> int:
        """What may still be held."""
        return max(self.limit - self.used, 0)


class AppEvents(Protocol):
    """What a connection tells the layer above (the transport adapter)."""

    def tcp_established(self) -> None:
        """The handshake completed (active opens; passive ones are handed over established)."""

    def tcp_data(self, data: bytes) -> None:
        """In-order C{data} arrived (never while reading is paused)."""

    def tcp_eof(self) -> None:
        """The peer's FIN arrived after all its data: it sends no more."""

    def tcp_writable(self) -> None:
        """The send buffer drained below half the send limit after C{wants_writable()}."""

    def tcp_closed(self, reason: Exception) -> None:
        """The connection is over (once), for C{reason}: done, reset, refused or timed out."""


Emit = Callable[[int, int, int, int, bytes, "bytes | bytearray | memoryview"], None]
