# -*- test-case-name: tests.test_tcp_parts -*-
"""
The receiver's out-of-order queue (RFC 9293 section 3.10.7.4, "segment text"; RFC 2018
section 4 for the SACK blocks it reports): data that arrived above RCV.NXT, kept until the gap
below it fills. Positions are unwrapped stream offsets (0 = the first data byte), so they never
wrap. The bytes held are charged to the stack-wide L{axl.tcp.common.RcvBudget} (issue 12): a
segment it cannot take is not kept, so no SACK block ever names it.
"""

from __future__ import annotations

import bisect
import struct

from axl.tcp.common import RcvBudget
from axl.tcp.seq import MASK

__all__ = ["MAX_OOO_SEGMENTS", "OOO_SEGMENT_COST", "OutOfOrderQueue"]

MAX_OOO_SEGMENTS = 4096       # segments held per connection (the budget bounds the bytes)
#: What holding one segment costs besides its payload (its bytes object, dict entry and range
#: entry: ~213 bytes measured on CPython 3.11), charged to the budget too, so a flood of tiny
#: segments on many connections cannot hold more memory than the budget says.
OOO_SEGMENT_COST = 256
_SACK_BLOCK = struct.Struct("!II")


class OutOfOrderQueue:
    """
    Out-of-order segments and the merged ranges they cover.

    @ivar segments: stream offset -> payload. Empty when there is no gap (test it for that).
    @ivar ranges: the same data as sorted, disjoint C{[start, end)} offset ranges.
    @ivar held: what C{segments} cost: their bytes (overlapping copies count twice) and
        L{OOO_SEGMENT_COST} each, all charged to C{budget} and released as they leave
        (L{drain}, L{clear}).
    @ivar budget: the stack-wide budget, or C{None}: unbounded (tests of the queue alone).
    """

    __slots__ = ("_last", "budget", "held", "ranges", "segments")

    def __init__(self, budget: RcvBudget | None = None) -> None:
        self.segments: dict[int, bytes] = {}
        self.ranges: list[list[int]] = []
        self.held = 0
        self.budget = budget
        self._last = 0                                  # offset of the latest segment stored

    @property
    def full(self) -> bool:
        """L{MAX_OOO_SEGMENTS} segments are held."""
        return len(self.segments) >= MAX_OOO_SEGMENTS

    def insert(self, offset: int, payload: bytes | memoryview) -> bool:
        """
        Keep C{payload}, which starts at stream offset C{offset}, unless it is all held
        already. Returns C{False} (and keeps nothing) when the budget cannot take its bytes,
        or L{MAX_OOO_SEGMENTS} are already held (a flood of tiny segments); the sender
        retransmits it later.
        """
        n = len(payload)
        ranges = self.ranges
        i = bisect.bisect_right(ranges, [offset, 1 << 62]) - 1
        if i >= 0 and ranges[i][1] >= offset + n:       # a copy of data held: keep nothing more
            self._last = offset
            return True
        old = self.segments.get(offset)
        if old is None and len(self.segments) >= MAX_OOO_SEGMENTS:
            return False
        grow = n - len(old) if old is not None else n + OOO_SEGMENT_COST
        budget = self.budget
        if budget is not None:
            if grow > budget.free:
                return False
            budget.charge(grow)
        self.held += grow
        self.segments[offset] = bytes(payload)
        self._add_range(offset, offset + n)
        self._last = offset
        return True

    def drain(self, offset: int, chunks: list[bytes]) -> int:
        """
        The in-order data now reaches stream offset C{offset}: append what continues it to
        C{chunks} and return the offset reached. What leaves the queue leaves the budget.
        """
        ooo = self.segments
        freed = 0
        while ooo:
            data = ooo.pop(offset, None)
            if data is None:
                start = min(ooo)
                if start > offset:
                    break
                data = ooo.pop(start)
                freed += len(data) + OOO_SEGMENT_COST
                skip = offset - start
                if skip >= len(data):
                    continue
                data = data[skip:]
            else:
                freed += len(data) + OOO_SEGMENT_COST
            chunks.append(data)
            offset += len(data)
        self._free(freed)
        ranges = self.ranges                            # forget the ranges now delivered
        k = 0
        while k < len(ranges) and ranges[k][0] <= offset:
            k += 1
        del ranges[:k]
        return offset

    def clear(self) -> None:
        """Drop everything (and give its bytes back to the budget)."""
        self.segments.clear()
        self.ranges.clear()
        self._free(self.held)

    def _free(self, nbytes: int) -> None:
        if nbytes:
            self.held -= nbytes
            if self.budget is not None:
                self.budget.release(nbytes)

    def sack_option(self, base: int, max_blocks: int) -> bytes:
        """
        A SACK option (with two NOPs in front) naming up to C{max_blocks} ranges: the one with
        the most recently received segment first, then the others from the highest (RFC 2018
        4). C{base} is the sequence number of stream offset 0 (IRS + 1).
        """
        ranges = self.ranges
        i = bisect.bisect_right(ranges, [self._last, 1 << 62]) - 1
        first = ranges[i] if i >= 0 and self._last < ranges[i][1] else None
        blocks = [first] if first is not None else []
        for r in reversed(ranges):
            if len(blocks) >= max_blocks:
                break
            if r is not first:
                blocks.append(r)
        body = b"".join(_SACK_BLOCK.pack((base + a) & MASK, (base + b) & MASK) for a, b in blocks)
        return b"\x01\x01\x05" + bytes((2 + 8 * len(blocks),)) + body

    def _add_range(self, start: int, end: int) -> None:
        """Merge [start, end) into the sorted, disjoint ranges."""
        r = self.ranges
        i = bisect.bisect_left(r, [start, -1])
        if i > 0 and r[i - 1][1] >= start:
            i -= 1
            start = r[i][0]
            end = max(end, r[i][1])
        j = i
        while j < len(r) and r[j][0] <= end:
            end = max(end, r[j][1])
            j += 1
        r[i:j] = [[start, end]]
