# -*- test-case-name: tests.test_mesh_wire -*-
"""
Codecs for the ironwood network frames of types 2..9 (spec/yggdrasil-wire.md sections 3.1, 3.3,
3.7 and 3.8), the bytes their signatures cover, and the path (coordinates) encoding.

Every decoder consumes its payload exactly (trailing bytes are a L{DecodeError}), except Traffic,
whose last field is the rest of the frame. Encoders refuse values that cannot be encoded
(C{ValueError}), so we never put a malformed frame on a link. The bloom filter payload (type 5)
lives in L{axl.mesh.bloom}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from axl.crypto.keys import verify
from axl.encoding import MAX_UINT64, uvarint_decode, uvarint_encode
from axl.errors import DecodeError

__all__ = [
    "FRAME_ANNOUNCE",
    "FRAME_BLOOM",
    "FRAME_BROKEN",
    "FRAME_LOOKUP",
    "FRAME_NOTIFY",
    "FRAME_SIGREQ",
    "FRAME_SIGRES",
    "FRAME_TRAFFIC",
    "MAX_WATERMARK",
    "Announce",
    "Path",
    "PathBroken",
    "PathLookup",
    "PathNotify",
    "SigReq",
    "SigRes",
    "Traffic",
    "decode_path",
    "encode_path",
    "notify_info_bytes",
    "tree_tbs",
]

FRAME_SIGREQ = 2
FRAME_SIGRES = 3
FRAME_ANNOUNCE = 4
FRAME_BLOOM = 5
FRAME_LOOKUP = 6
FRAME_NOTIFY = 7
FRAME_BROKEN = 8
FRAME_TRAFFIC = 9

KEY_SIZE = 32
SIG_SIZE = 64

#: The watermark a packet starts with (section 3.7, 3.8).
MAX_WATERMARK = MAX_UINT64

#: A path (coordinates): the ports from the root down to a node; never contains 0.
Path = tuple[int, ...]

_EMPTY_PATH = b"\x00"


def encode_path(path: Sequence[int]) -> bytes:
    """The uvarint ports of C{path} followed by the terminating 0."""
    if not path:
        return _EMPTY_PATH
    if max(path) < 0x80:
        if min(path) < 1:
            raise ValueError(f"a path port must be at least 1: {tuple(path)}")
        return bytes(path) + _EMPTY_PATH
    for port in path:
        if port < 1:
            raise ValueError(f"a path port must be at least 1: {tuple(path)}")
    return b"".join([uvarint_encode(p) for p in path]) + _EMPTY_PATH


def decode_path(data: bytes, offset: int = 0) -> tuple[Path, int]:
    """
    Decode a 0-terminated path starting at C{offset}.

    @return: C{(ports, offset just past the terminator)}.
    @raise DecodeError: the data ends before the terminator, or a port is not a valid uvarint.
    """
    end = data.find(0, offset)
    if end < 0:
        # No terminator at all (a 0 byte is needed even inside a non-minimal varint).
        raise DecodeError("truncated path")
    if end == offset:
        return (), end + 1
    segment = data[offset:end]
    if segment.isascii():
        # Every byte is a whole single-byte (nonzero) port; the 0 byte is the terminator.
        return tuple(segment), end + 1
    ports: list[int] = []
    pos = offset
    while True:
        port, pos = uvarint_decode(data, pos)
        if port == 0:
            return tuple(ports), pos
        ports.append(port)


def tree_tbs(node: bytes, parent: bytes, seq: int, nonce: int, port: int) -> bytes:
    """The bytes a tree entry's C{psig} and C{sig} cover (section 3.3)."""
    return b"".join(
        [node, parent, uvarint_encode(seq), uvarint_encode(nonce), uvarint_encode(port)]
    )


def notify_info_bytes(seq: int, path: Sequence[int]) -> bytes:
    """The bytes a PathNotify's C{info_sig} covers (section 3.7)."""
    return uvarint_encode(seq) + encode_path(path)


def _take(data: bytes, offset: int, size: int) -> tuple[bytes, int]:
    stop = offset + size
    if stop > len(data):
        raise DecodeError("truncated payload")
    return data[offset:stop], stop


def _done(data: bytes, offset: int) -> None:
    if offset != len(data):
        raise DecodeError(f"{len(data) - offset} trailing bytes")


def _check_key(name: str, value: bytes) -> None:
    if len(value) != KEY_SIZE:
        raise ValueError(f"{name} must be {KEY_SIZE} bytes, not {len(value)}")


def _check_sig(name: str, value: bytes) -> None:
    if len(value) != SIG_SIZE:
        raise ValueError(f"{name} must be {SIG_SIZE} bytes, not {len(value)}")


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if type(data) is bytes else bytes(data)


@dataclass(frozen=True, slots=True)
class SigReq:
    """Frame type 2: a request for a parent's signature over our next tree entry."""

    seq: int
    nonce: int

    def encode(self) -> bytes:
        """The frame payload (the type byte excluded): C{seq} and C{nonce} as uvarints."""
        return uvarint_encode(self.seq) + uvarint_encode(self.nonce)

    @classmethod
    def decode(cls, data: bytes) -> SigReq:
        """
        Decode a SigReq (frame type 2) from its payload (the type byte excluded), which it must fill
        exactly.

        @raise DecodeError: the payload ends inside a field, a field is not a valid uvarint, or
            bytes are left over.
        """
        data = _as_bytes(data)
        seq, pos = uvarint_decode(data, 0)
        nonce, pos = uvarint_decode(data, pos)
        _done(data, pos)
        return cls(seq, nonce)


@dataclass(frozen=True, slots=True)
class SigRes:
    """Frame type 3: the parent's answer; C{psig} covers C{tree_tbs(child, parent, ...)}."""

    seq: int
    nonce: int
    port: int
    psig: bytes

    def encode(self) -> bytes:
        """
        The frame payload (the type byte excluded).

        @raise ValueError: a key or signature field has the wrong length.
        """
        _check_sig("psig", self.psig)
        return b"".join(
            [
                uvarint_encode(self.seq),
                uvarint_encode(self.nonce),
                uvarint_encode(self.port),
                self.psig,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> SigRes:
        """
        Decode a SigRes (frame type 3) from its payload (the type byte excluded), which it must fill
        exactly.

        @raise DecodeError: the payload ends inside a field, a field is not a valid uvarint, or
            bytes are left over.
        """
        data = _as_bytes(data)
        seq, pos = uvarint_decode(data, 0)
        nonce, pos = uvarint_decode(data, pos)
        port, pos = uvarint_decode(data, pos)
        psig, pos = _take(data, pos, SIG_SIZE)
        _done(data, pos)
        return cls(seq, nonce, port, psig)

    def verify(self, node: bytes, parent: bytes) -> bool:
        """Whether C{psig} is C{parent}'s signature of this entry for child C{node}."""
        return verify(parent, tree_tbs(node, parent, self.seq, self.nonce, self.port), self.psig)


@dataclass(frozen=True, slots=True)
class Announce:
    """Frame type 4: one signed tree entry (node C{key} under C{parent})."""

    key: bytes
    parent: bytes
    seq: int
    nonce: int
    port: int
    psig: bytes
    sig: bytes

    def encode(self) -> bytes:
        """
        The frame payload (the type byte excluded).

        @raise ValueError: a key or signature field has the wrong length.
        """
        _check_key("key", self.key)
        _check_key("parent", self.parent)
        _check_sig("psig", self.psig)
        _check_sig("sig", self.sig)
        return b"".join(
            [
                self.key,
                self.parent,
                uvarint_encode(self.seq),
                uvarint_encode(self.nonce),
                uvarint_encode(self.port),
                self.psig,
                self.sig,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> Announce:
        """
        Decode an Announce (frame type 4) from its payload (the type byte excluded), which it must
        fill exactly.

        @raise DecodeError: the payload ends inside a field, a field is not a valid uvarint, or
            bytes are left over.
        """
        data = _as_bytes(data)
        key, pos = _take(data, 0, KEY_SIZE)
        parent, pos = _take(data, pos, KEY_SIZE)
        seq, pos = uvarint_decode(data, pos)
        nonce, pos = uvarint_decode(data, pos)
        port, pos = uvarint_decode(data, pos)
        psig, pos = _take(data, pos, SIG_SIZE)
        sig, pos = _take(data, pos, SIG_SIZE)
        _done(data, pos)
        return cls(key, parent, seq, nonce, port, psig, sig)

    def tbs(self) -> bytes:
        """The bytes C{psig} and C{sig} cover: L{tree_tbs} of this entry (section 3.3)."""
        return tree_tbs(self.key, self.parent, self.seq, self.nonce, self.port)

    def verify(self) -> bool:
        """C{routerAnnounce.check}: port 0 only for a root, both signatures valid."""
        if self.port == 0 and self.key != self.parent:
            return False
        tbs = self.tbs()
        if not verify(self.key, tbs, self.sig):
            return False
        if self.psig == self.sig and self.key == self.parent:
            return True  # a root entry: the same signature by the same key
        return verify(self.parent, tbs, self.psig)


@dataclass(frozen=True, slots=True)
class PathLookup:
    """Frame type 6: who is C{dest} (possibly partial)? C{from_path} is the asker's coords."""

    source: bytes
    dest: bytes
    from_path: Path

    def encode(self) -> bytes:
        """
        The frame payload (the type byte excluded).

        @raise ValueError: a key or signature field has the wrong length.
        """
        _check_key("source", self.source)
        _check_key("dest", self.dest)
        return self.source + self.dest + encode_path(self.from_path)

    @classmethod
    def decode(cls, data: bytes) -> PathLookup:
        """
        Decode a PathLookup (frame type 6) from its payload (the type byte excluded), which it must
        fill exactly.

        @raise DecodeError: the payload ends inside a field, a field is not a valid uvarint, or
            bytes are left over.
        """
        data = _as_bytes(data)
        source, pos = _take(data, 0, KEY_SIZE)
        dest, pos = _take(data, pos, KEY_SIZE)
        from_path, pos = decode_path(data, pos)
        _done(data, pos)
        return cls(source, dest, from_path)


@dataclass(frozen=True, slots=True)
class PathNotify:
    """Frame type 7: C{source}'s signed coords, routed greedily along C{path} to C{dest}."""

    path: Path
    watermark: int
    source: bytes
    dest: bytes
    info_seq: int
    info_path: Path
    info_sig: bytes

    def encode(self) -> bytes:
        """
        The frame payload (the type byte excluded).

        @raise ValueError: a key or signature field has the wrong length.
        """
        _check_key("source", self.source)
        _check_key("dest", self.dest)
        _check_sig("info_sig", self.info_sig)
        return b"".join(
            [
                encode_path(self.path),
                uvarint_encode(self.watermark),
                self.source,
                self.dest,
                uvarint_encode(self.info_seq),
                encode_path(self.info_path),
                self.info_sig,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> PathNotify:
        """
        Decode a PathNotify (frame type 7) from its payload (the type byte excluded), which it must
        fill exactly.

        @raise DecodeError: the payload ends inside a field, a field is not a valid uvarint, or
            bytes are left over.
        """
        data = _as_bytes(data)
        path, pos = decode_path(data, 0)
        watermark, pos = uvarint_decode(data, pos)
        source, pos = _take(data, pos, KEY_SIZE)
        dest, pos = _take(data, pos, KEY_SIZE)
        info_seq, pos = uvarint_decode(data, pos)
        info_path, pos = decode_path(data, pos)
        info_sig, pos = _take(data, pos, SIG_SIZE)
        _done(data, pos)
        return cls(path, watermark, source, dest, info_seq, info_path, info_sig)

    def verify(self) -> bool:
        """Whether C{info_sig} is C{source}'s signature of C{(info_seq, info_path)}."""
        return verify(self.source, notify_info_bytes(self.info_seq, self.info_path), self.info_sig)


@dataclass(frozen=True, slots=True)
class PathBroken:
    """Frame type 8: traffic from C{source} to C{dest} got stuck; routed back along C{path}."""

    path: Path
    watermark: int
    source: bytes
    dest: bytes

    def encode(self) -> bytes:
        """
        The frame payload (the type byte excluded).

        @raise ValueError: a key or signature field has the wrong length.
        """
        _check_key("source", self.source)
        _check_key("dest", self.dest)
        return b"".join(
            [encode_path(self.path), uvarint_encode(self.watermark), self.source, self.dest]
        )

    @classmethod
    def decode(cls, data: bytes) -> PathBroken:
        """
        Decode a PathBroken (frame type 8) from its payload (the type byte excluded), which it must
        fill exactly.

        @raise DecodeError: the payload ends inside a field, a field is not a valid uvarint, or
            bytes are left over.
        """
        data = _as_bytes(data)
        path, pos = decode_path(data, 0)
        watermark, pos = uvarint_decode(data, pos)
        source, pos = _take(data, pos, KEY_SIZE)
        dest, pos = _take(data, pos, KEY_SIZE)
        _done(data, pos)
        return cls(path, watermark, source, dest)


@dataclass(frozen=True, slots=True)
class Traffic:
    """Frame type 9: a source-routed packet; C{data} is the rest of the frame (opaque here)."""

    path: Path
    from_path: Path
    source: bytes
    dest: bytes
    watermark: int
    data: bytes

    def encode(self) -> bytes:
        """
        The frame payload (the type byte excluded).

        @raise ValueError: a key or signature field has the wrong length.
        """
        _check_key("source", self.source)
        _check_key("dest", self.dest)
        return b"".join(
            [
                encode_path(self.path),
                encode_path(self.from_path),
                self.source,
                self.dest,
                uvarint_encode(self.watermark),
                self.data,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> Traffic:
        """
        Decode a Traffic frame (type 9) from its payload (the type byte excluded); the bytes after
        the watermark are C{data}.

        @raise DecodeError: the payload ends inside a field or a field is not a valid uvarint.
        """
        data = _as_bytes(data)
        path, pos = decode_path(data, 0)
        from_path, pos = decode_path(data, pos)
        source, pos = _take(data, pos, KEY_SIZE)
        dest, pos = _take(data, pos, KEY_SIZE)
        watermark, pos = uvarint_decode(data, pos)
        return cls(path, from_path, source, dest, watermark, data[pos:])
