# -*- test-case-name: tests.test_mesh_limits -*-
"""
Per-peer limits on the frames that make the router work or answer (issue 12).

Every frame type but Traffic costs a signature, a verification, a multicast or an answer, so
each has a token bucket per remote key (shared by all links to that key), checked at the
router's frame entry point before the frame is decoded. A frame over its limit is ignored; a
peer that keeps going over (L{STRIKE_BURST} ignored frames faster than L{STRIKE_RATE} per
second) raises L{PeerFlooding}, which drops its link (and the link layer backs it off).

The rates are far above what ironwood itself sends (section 3 of spec/yggdrasil-wire.md): a
SigReq per link up and per parent change or refresh, a bloom per tick at most, announces once
per tree entry, lookups and notifies a few per second per destination.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from axl.errors import PeerFlooding
from axl.mesh.wire import (
    FRAME_ANNOUNCE,
    FRAME_BLOOM,
    FRAME_BROKEN,
    FRAME_LOOKUP,
    FRAME_NOTIFY,
    FRAME_SIGREQ,
    FRAME_SIGRES,
)
from axl.ratelimit import TokenBucket

__all__ = ["FRAME_LIMITS", "STRIKE_BURST", "STRIKE_RATE", "FrameLimiter"]

#: frame type -> (frames per second, burst) allowed per remote key; Traffic is not limited
#: here (the link's write-buffer bound and TCP's congestion control bound it).
FRAME_LIMITS: dict[int, tuple[float, float]] = {
    FRAME_SIGREQ: (2.0, 16.0),  # each costs a signature and an answer
    FRAME_SIGRES: (4.0, 32.0),  # each costs a verification
    FRAME_ANNOUNCE: (200.0, 2000.0),  # a verification each (a whole tree on link up)
    FRAME_BLOOM: (4.0, 32.0),
    FRAME_LOOKUP: (1000.0, 5000.0),  # multicast on; a signature per second for our own key
    FRAME_NOTIFY: (1000.0, 5000.0),  # a verification when it is for us (and newer)
    FRAME_BROKEN: (1000.0, 5000.0),
}
#: Frames over the limit a peer may send (refilled at L{STRIKE_RATE} per second) before it is
#: dropped as flooding.
STRIKE_BURST = 1000.0
STRIKE_RATE = 50.0


class FrameLimiter:
    """
    The token buckets of one remote key.

    @ivar ignored: frames ignored for being over their limit, by type.
    """

    __slots__ = ("_buckets", "_strikes", "ignored")

    def __init__(self, clock: IReactorTime) -> None:
        self._buckets = {t: TokenBucket(clock, rate, burst) for t, (rate, burst) in FRAME_LIMITS.items()}
        self._strikes = TokenBucket(clock, STRIKE_RATE, STRIKE_BURST)
        self.ignored: dict[int, int] = {}

    def allow(self, frame_type: int) -> bool:
        """
        Whether to handle one frame of C{frame_type} now.

        @raise PeerFlooding: the peer went over its limits too often.
        """
        bucket = self._buckets.get(frame_type)
        if bucket is None or bucket.take():
            return True
        self.ignored[frame_type] = self.ignored.get(frame_type, 0) + 1
        if not self._strikes.take():
            raise PeerFlooding(
                f"{sum(self.ignored.values())} frames over the limits "
                f"(by type: {dict(sorted(self.ignored.items()))})"
            )
        return False
