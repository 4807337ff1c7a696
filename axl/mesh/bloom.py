# -*- test-case-name: tests.test_mesh_bloom -*-
"""
Ironwood's bloom filters (spec/yggdrasil-wire.md section 3.6): 8192 bits, 8 hash functions, the
bits-and-blooms v3 hashing (MurmurHash3 x64-128) and the compressed wire format of frame type 5.

A filter is a plain Python C{int}: bit C{b} of the filter is bit C{b} of the integer, which is
exactly Go's layout (C{word[b >> 6] |= 1 << (b & 63)}, words in ascending order). Union is C{|};
the 8-bit mask of an item is cached, since items are always C{xform(key)} of a few keys.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from axl.errors import DecodeError

__all__ = [
    "BLOOM_BITS",
    "BLOOM_HASHES",
    "EMPTY_BLOOM",
    "bloom_contains",
    "bloom_mask",
    "bloom_positions",
    "decode_bloom",
    "encode_bloom",
    "murmur3_x64_128",
]

BLOOM_BITS = 8192
BLOOM_HASHES = 8
_WORDS = BLOOM_BITS // 64
_FLAG_BYTES = _WORDS // 8
_M64 = (1 << 64) - 1
_ALL_ONES_WORD = _M64

EMPTY_BLOOM = 0

_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F
_BLOCK = struct.Struct("<QQ")
_LE_WORDS = struct.Struct(f"<{_WORDS}Q")


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    k ^= k >> 33
    return k


def murmur3_x64_128(data: bytes, seed: int = 0) -> tuple[int, int]:
    """The standard MurmurHash3 x64 128-bit hash of C{data}, as the two 64-bit halves."""
    h1 = h2 = seed
    length = len(data)
    nblocks = length // 16
    for i in range(nblocks):
        k1, k2 = _BLOCK.unpack_from(data, i * 16)
        k1 = (k1 * _C1) & _M64
        k1 = ((k1 << 31) | (k1 >> 33)) & _M64
        h1 ^= (k1 * _C2) & _M64
        h1 = ((h1 << 27) | (h1 >> 37)) & _M64
        h1 = (((h1 + h2) * 5) + 0x52DCE729) & _M64
        k2 = (k2 * _C2) & _M64
        k2 = ((k2 << 33) | (k2 >> 31)) & _M64
        h2 ^= (k2 * _C1) & _M64
        h2 = ((h2 << 31) | (h2 >> 33)) & _M64
        h2 = (((h2 + h1) * 5) + 0x38495AB5) & _M64
    tail = data[nblocks * 16 :]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        k2 = (k2 * _C2) & _M64
        k2 = ((k2 << 33) | (k2 >> 31)) & _M64
        h2 ^= (k2 * _C1) & _M64
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        k1 = (k1 * _C1) & _M64
        k1 = ((k1 << 31) | (k1 >> 33)) & _M64
        h1 ^= (k1 * _C2) & _M64
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1, h2


def bloom_positions(item: bytes) -> tuple[int, ...]:
    """The 8 bit positions of C{item}: C{h[i%2] + i*h[2 + ((i + i%2) % 4)//2]} mod 8192."""
    h = murmur3_x64_128(item) + murmur3_x64_128(item + b"\x01")
    return tuple(
        ((h[i % 2] + i * h[2 + ((i + i % 2) % 4) // 2]) & _M64) % BLOOM_BITS
        for i in range(BLOOM_HASHES)
    )


@lru_cache(maxsize=4096)
def bloom_mask(item: bytes) -> int:
    """The filter holding only C{item} (its 8 bits set)."""
    mask = 0
    for bit in bloom_positions(item):
        mask |= 1 << bit
    return mask


def bloom_contains(bloom: int, item: bytes) -> bool:
    """Whether all 8 bits of C{item} are set in C{bloom}."""
    mask = bloom_mask(item)
    return bloom & mask == mask


def encode_bloom(bloom: int) -> bytes:
    """
    The frame type 5 payload: C{flags0[16] || flags1[16] || BE64 words}, where the flags mark
    all-zero and all-one words and only the other words follow, in ascending order.
    """
    words = _LE_WORDS.unpack(bloom.to_bytes(BLOOM_BITS // 8, "little"))
    flags0 = flags1 = 0
    kept = []
    for i, word in enumerate(words):
        if word == 0:
            flags0 |= 1 << (_WORDS - 1 - i)
        elif word == _ALL_ONES_WORD:
            flags1 |= 1 << (_WORDS - 1 - i)
        else:
            kept.append(word)
    return b"".join(
        [
            flags0.to_bytes(_FLAG_BYTES, "big"),
            flags1.to_bytes(_FLAG_BYTES, "big"),
            struct.pack(f">{len(kept)}Q", *kept),
        ]
    )


def decode_bloom(data: bytes) -> int:
    """
    Decode a frame type 5 payload.

    @raise DecodeError: a word flagged both all-zero and all-one, data too short for the
        unflagged words, or trailing bytes.
    """
    if len(data) < 2 * _FLAG_BYTES:
        raise DecodeError("truncated bloom filter flags")
    flags0 = int.from_bytes(data[:_FLAG_BYTES], "big")
    flags1 = int.from_bytes(data[_FLAG_BYTES : 2 * _FLAG_BYTES], "big")
    if flags0 & flags1:
        raise DecodeError("bloom filter word flagged both all-zero and all-one")
    flagged = flags0 | flags1
    count = _WORDS - flagged.bit_count()
    expected = 2 * _FLAG_BYTES + 8 * count
    if len(data) != expected:
        if len(data) < expected:
            raise DecodeError("truncated bloom filter words")
        raise DecodeError(f"{len(data) - expected} trailing bytes after the bloom filter")
    kept = iter(struct.unpack_from(f">{count}Q", data, 2 * _FLAG_BYTES))
    words = []
    for i in range(_WORDS):
        bit = 1 << (_WORDS - 1 - i)
        if flags0 & bit:
            words.append(0)
        elif flags1 & bit:
            words.append(_ALL_ONES_WORD)
        else:
            words.append(next(kept))
    return int.from_bytes(_LE_WORDS.pack(*words), "little")
