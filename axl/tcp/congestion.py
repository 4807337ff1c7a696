# -*- test-case-name: tests.test_tcp_parts -*-
"""
Congestion control of one TCP connection: slow start with appropriate byte counting
(RFC 5681 section 3.1, RFC 3465 with L = 2 SMSS), congestion avoidance, fast retransmit and
NewReno fast recovery (RFC 5681 section 3.2, RFC 6582), limited transmit (RFC 3042), the
initial window of RFC 6928 counted in segments as Linux does (see L{NewReno.start}), and the
collapse to one segment after a retransmission timeout.
With SACK the window is not inflated by duplicate ACKs: SACKed bytes count as gone from the
network instead (RFC 6675 "pipe"), see L{NewReno.window}.

Sans-IO: the connection reports ACK events and asks for the window; the return values say when
it must retransmit.
"""

from __future__ import annotations

from axl.tcp.seq import seq_diff, seq_ge, seq_gt

__all__ = ["ENTER_RECOVERY", "NO_ACTION", "RESEND_HOLE", "NewReno"]

NO_ACTION = 0
ENTER_RECOVERY = 1            # third duplicate ACK: resend the first unacknowledged segment
RESEND_HOLE = 2               # a duplicate ACK in SACK recovery: resend the next hole


class NewReno:
    """
    The congestion state. Sizes are in bytes; C{smss} is passed in because Packet Too Big can
    lower it mid-connection.

    @ivar cwnd: the congestion window.
    @ivar ssthresh: the slow-start threshold.
    @ivar in_recovery: in fast recovery until SND.UNA passes C{recover}.
    @ivar limited: extra bytes limited transmit allows (RFC 3042).
    """

    __slots__ = ("bytes_acked", "cwnd", "dupacks", "in_recovery", "limited", "recover",
                 "ssthresh")

    def __init__(self, iss: int) -> None:
        self.cwnd = 0
        self.ssthresh = 1 << 30
        self.bytes_acked = 0
        self.dupacks = 0
        self.limited = 0
        self.recover = iss
        self.in_recovery = False

    def start(self, smss: int, initial_window: int) -> None:
        """
        The handshake set SMSS: open the initial window of C{initial_window} segments. Like
        Linux, and unlike RFC 6928's 14600-byte cap, the count does not shrink for large
        segments: on the overlay's 64 KiB segments the cap would leave two segments and cost
        the first megabyte over a 40 ms path three more round trips, while the burst only
        queues in the sending node's own link (a kernel TCP socket with congestion control
        of its own).
        """
        self.cwnd = initial_window * smss

    def window(self, sacked_bytes: int) -> int:
        """Bytes the sender may have in flight beyond SND.UNA."""
        w = self.cwnd + self.limited
        if self.in_recovery:
            w += sacked_bytes                          # SACKed data has left the network
        return w

    def duplicate_ack(self, una: int, snd_max: int, smss: int, sack: bool) -> int:
        """
        A duplicate ACK arrived (RFC 5681 section 2, or newly SACKed data). Returns
        L{ENTER_RECOVERY}, L{RESEND_HOLE} or L{NO_ACTION}.
        """
        self.dupacks += 1
        action = NO_ACTION
        if self.dupacks == 3 and not self.in_recovery:
            if seq_gt(una, self.recover):               # not a leftover of the last recovery
                self.ssthresh = max(seq_diff(snd_max, una) // 2, 2 * smss)
                self.recover = snd_max
                self.in_recovery = True
                # NewReno inflates by the three segments that left; with SACK see window()
                self.cwnd = self.ssthresh if sack else self.ssthresh + 3 * smss
                action = ENTER_RECOVERY
        elif self.in_recovery:
            if sack:
                action = RESEND_HOLE
            else:
                self.cwnd += smss                       # inflate (RFC 5681 3.2 step 4)
        if self.dupacks < 3 and not self.in_recovery:
            self.limited = self.dupacks * smss          # limited transmit (RFC 3042)
        else:
            self.limited = 0
        return action

    def other_ack(self) -> None:
        """An ACK that acknowledges nothing new and is no duplicate (e.g. a window update)."""
        self.dupacks = self.limited = 0

    def new_ack(self, ack: int, acked: int, smss: int, sack: bool, flight: int) -> bool:
        """
        C{acked} new bytes were acknowledged, up to C{ack}, when C{flight} bytes were
        outstanding. Returns C{True} for a partial ACK in recovery (RFC 6582 3.2 step 4): the
        caller resends the first unacknowledged segment.

        The window grows only while it is used: not when less than half of it was in flight
        (RFC 7661's rule against growth by an application-limited or receive-window-limited
        sender, in Linux's form), so it never runs far ahead of what the path has carried.
        """
        partial = False
        if self.in_recovery:
            if seq_ge(ack, self.recover):               # full ACK (RFC 6582 3.2 step 3)
                self.in_recovery = False
                self.cwnd = self.ssthresh
            else:
                partial = True
                if not sack:                            # NewReno deflation
                    self.cwnd = max(self.cwnd - acked + (smss if acked >= smss else 0), smss)
        elif 2 * flight < self.cwnd:
            pass                                        # not cwnd-limited: no growth
        elif self.cwnd < self.ssthresh:
            self.cwnd += min(acked, 2 * smss)           # slow start, L = 2 SMSS (RFC 3465)
        else:
            self.bytes_acked += acked
            if self.bytes_acked >= self.cwnd:
                self.bytes_acked -= self.cwnd
                self.cwnd += smss
        if not self.in_recovery:
            self.dupacks = 0
        self.limited = 0
        return partial

    def timeout(self, una: int, snd_max: int, smss: int, first: bool) -> None:
        """
        The retransmission timer expired (RFC 5681 3.1, eq. 4): one segment of window; the
        threshold halves the flight on the first expiry of a series only.
        """
        if first:
            self.ssthresh = max(seq_diff(snd_max, una) // 2, 2 * smss)
        self.cwnd = smss
        self.bytes_acked = 0
        self.recover = snd_max
        self.in_recovery = False
        self.dupacks = self.limited = 0
