# -*- test-case-name: tests.test_tcp_connection -*-
"""
The retransmission timeout estimator of RFC 6298 (section 2), with exponential back-off
(section 5.5) and a cap, and the timing of one segment at a time for connections without
timestamps (Karn's algorithm, RFC 6298 section 3: retransmitted segments are never timed).
"""

from __future__ import annotations

from axl.tcp.seq import seq_gt

__all__ = ["RTOEstimator"]


class RTOEstimator:
    """
    Smoothed RTT and RTO. Times are in seconds.

    @ivar rto: the current timeout, backed-off value included.
    """

    __slots__ = ("_base", "granularity", "max_rto", "min_rto", "rto", "rttvar", "srtt",
                 "timed_at", "timed_seq")

    def __init__(self, initial: float = 1.0, min_rto: float = 0.2, max_rto: float = 60.0,
                 granularity: float = 0.001) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.min_rto, self.max_rto, self.granularity = min_rto, max_rto, granularity
        self._base = self.rto = min(max(initial, min_rto), max_rto)
        self.timed_seq: int | None = None       # the segment being timed (no timestamps)
        self.timed_at = 0.0

    def sample(self, r: float) -> None:
        """Take one RTT measurement (RFC 6298 2.2/2.3); clears any back-off."""
        if r < 0:
            return
        if self.srtt is None:
            self.srtt, self.rttvar = r, r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        base = self.srtt + max(self.granularity, 4 * self.rttvar)
        self._base = self.rto = min(max(base, self.min_rto), self.max_rto)

    def back_off(self) -> None:
        """Double the timeout after an expiry (RFC 6298 5.5), up to C{max_rto}."""
        self.rto = min(self.rto * 2, self.max_rto)

    def clear_back_off(self) -> None:
        """New data was acknowledged: return to the estimated timeout."""
        self.rto = self._base

    def time_segment(self, seq: int, now: float) -> None:
        """Time the segment starting at C{seq}, sent at C{now}, unless one is already timed."""
        if self.timed_seq is None:
            self.timed_seq, self.timed_at = seq, now

    def acknowledged(self, ack: int, now: float) -> None:
        """An ACK up to C{ack} arrived at C{now}: sample the timed segment if it is covered."""
        if self.timed_seq is not None and seq_gt(ack, self.timed_seq):
            self.sample(now - self.timed_at)
            self.timed_seq = None

    def forget_timing(self) -> None:
        """Data is being retransmitted: the timed segment's sample would be ambiguous (Karn)."""
        self.timed_seq = None
