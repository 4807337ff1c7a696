# -*- test-case-name: tests.test_tcp_parts -*-
"""
The sender's SACK scoreboard (RFC 2018 section 3, RFC 6675 sections 2-4): which ranges above
SND.UNA the peer reports holding, how many bytes that is (they have left the network, RFC 6675
"pipe"), and where the next hole to retransmit in loss recovery starts.
"""

from __future__ import annotations

from collections.abc import Iterable

from axl.tcp.seq import MASK, seq_diff, seq_gt

__all__ = ["MAX_SACK_RANGES", "SackScoreboard"]

MAX_SACK_RANGES = 16          # the highest ranges kept; a peer cannot grow the scoreboard past it


class SackScoreboard:
    """
    SACKed ranges above SND.UNA, as sequence-number pairs C{(start, end)}, sorted and disjoint.

    @ivar ranges: the ranges (at most L{MAX_SACK_RANGES}, the highest kept).
    @ivar sacked_bytes: the bytes they cover.
    @ivar rexmit_next: the next sequence number a hole retransmission may start at.
    """

    __slots__ = ("ranges", "rexmit_next", "sacked_bytes")

    def __init__(self, iss: int) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.sacked_bytes = 0
        self.rexmit_next = iss & MASK

    def update(self, una: int, snd_max: int, blocks: Iterable[tuple[int, int]] = ()) -> bool:
        """
        Merge a segment's SACK C{blocks} in and forget what lies below C{una} (SND.UNA);
        blocks outside (SND.UNA, SND.MAX] (D-SACKs, nonsense) are ignored. Returns whether the
        scoreboard now covers more bytes than before.
        """
        top = seq_diff(snd_max, una)
        ranges = [(seq_diff(lo, una), seq_diff(hi, una)) for lo, hi in self.ranges]
        for lo, hi in blocks:
            a, b = seq_diff(lo, una), seq_diff(hi, una)
            if 0 < a < b <= top:
                ranges.append((a, b))
        merged: list[list[int]] = []
        for a, b in sorted(r for r in ranges if r[1] > 0):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([max(a, 0), b])
        kept = merged[-MAX_SACK_RANGES:]
        before = self.sacked_bytes
        self.ranges = [((una + a) & MASK, (una + b) & MASK) for a, b in kept]
        self.sacked_bytes = sum(b - a for a, b in kept)
        return self.sacked_bytes > before

    def restart(self, una: int) -> None:
        """Recovery (re)starts: the next hole to resend is searched from C{una} again."""
        self.rexmit_next = una

    def retransmitted(self, end: int) -> None:
        """Bytes below C{end} were just resent: the next hole starts no lower."""
        if seq_gt(end, self.rexmit_next):
            self.rexmit_next = end

    def next_hole(self, una: int, max_len: int) -> tuple[int, int] | None:
        """
        The next not-yet-retransmitted hole below the highest SACKed byte, as
        C{(sequence number, length)} of at most C{max_len} bytes, or C{None}.
        """
        pos = max(seq_diff(self.rexmit_next, una), 0)
        for lo, hi in self.ranges:
            a, b = seq_diff(lo, una), seq_diff(hi, una)
            if pos < a:
                return (una + pos) & MASK, min(a - pos, max_len)
            pos = max(pos, b)
        return None
