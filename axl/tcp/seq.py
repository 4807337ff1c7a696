# -*- test-case-name: tests.test_tcp_segment -*-
"""
Sequence-number arithmetic modulo 2**32 (RFC 9293 section 3.4, RFC 1982 style comparisons).

Two sequence numbers compare by the sign of their 32-bit difference, so comparisons stay correct
across wrap-around as long as the numbers are less than 2**31 apart.
"""

from __future__ import annotations

__all__ = ["MASK", "MOD", "seq_add", "seq_diff", "seq_ge", "seq_gt", "seq_le", "seq_lt", "seq_max"]

MOD = 1 << 32
MASK = MOD - 1
_HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    """C{a + n} modulo 2**32 (C{n} may be negative)."""
    return (a + n) & MASK


def seq_diff(a: int, b: int) -> int:
    """The signed distance C{a - b}, in [-2**31, 2**31)."""
    return ((a - b + _HALF) & MASK) - _HALF


def seq_lt(a: int, b: int) -> bool:
    """C{a} comes before C{b}."""
    return ((a - b) & MASK) >= _HALF


def seq_le(a: int, b: int) -> bool:
    """C{a} comes before C{b} or equals it."""
    return a == b or ((a - b) & MASK) >= _HALF


def seq_gt(a: int, b: int) -> bool:
    """C{a} comes after C{b}."""
    return a != b and ((a - b) & MASK) < _HALF


def seq_ge(a: int, b: int) -> bool:
    """C{a} comes after C{b} or equals it."""
    return ((a - b) & MASK) < _HALF


def seq_max(a: int, b: int) -> int:
    """The later of two sequence numbers."""
    return a if ((a - b) & MASK) < _HALF else b
