# -*- test-case-name: tests.test_tcp_segment -*-
"""
Tests for L{axl.tcp.segment} and L{axl.tcp.seq}: the gVisor/Linux capture decodes to its
summaries, checksums, option encoding, sequence arithmetic, decoder property tests.
"""

from __future__ import annotations

import ipaddress
import json
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.errors import DecodeError
from axl.tcp.segment import (
    ACK,
    SYN,
    build_tcp,
    decode_segment,
    encode_options,
    flag_names,
    syn_options,
    tcp_checksum,
    ts_option,
    verify_checksum,
)
from axl.tcp.seq import seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt, seq_max
from tests.vectors import require



def load_vectors() -> list[dict]:
    """The 331 captured packets (skips the calling test if the file is absent)."""
    with open(require("tcp-gvisor.jsonl")) as f:
        return [json.loads(line) for line in f]


def summarize(packet: bytes) -> dict:
    """Rebuild the capture's C{summary} from our decoder's view of a whole IPv6 packet."""
    first, _plen, _nh, hlim = struct.unpack_from("!IHBB", packet, 0)
    seg = decode_segment(packet[40:])
    opts = []
    for name, value in seg.options:
        if name == "nop":
            opts.append({"nop": True})
        elif name == "ts":
            opts.append({"ts": list(value)})
        elif name == "sack":
            opts.append({"sack": [list(b) for b in value]})
        else:
            opts.append({name: value})
    out = {
        "src": str(ipaddress.IPv6Address(packet[8:24])),
        "dst": str(ipaddress.IPv6Address(packet[24:40])),
        "sport": seg.sport, "dport": seg.dport, "flags": flag_names(seg.flags),
        "seq": seg.seq, "ack": seg.ack, "win": seg.window, "len": len(seg.payload),
        "options": opts, "hdr_len": seg.hdr_len,
        "csum": "ok" if verify_checksum(packet[8:24], packet[24:40], packet[40:]) else "partial",
        "hlim": hlim, "flowlabel": first & 0xFFFFF, "tclass": (first >> 20) & 0xFF,
    }
    return out


class VectorTests(SynchronousTestCase):
    """The real capture between gVisor and Linux."""

    def setUp(self) -> None:
        self.records = load_vectors()

    def test_count(self) -> None:
        """The capture holds 331 packets."""
        self.assertEqual(len(self.records), 331)

    def test_every_packet_decodes_to_its_summary(self) -> None:
        """Each packet decodes to its summary; checksums verify except the ones flagged partial."""
        for rec in self.records:
            packet = bytes.fromhex(rec["hex"])
            expected = {k: v for k, v in rec["summary"].items()
                        if k not in ("win_bytes", "tun_offload")}
            self.assertEqual(summarize(packet), expected, rec["t"])

    def test_window_bytes(self) -> None:
        """win_bytes is the window field shifted by the sender's SYN window scale (not on SYNs)."""
        scale: dict[tuple[str, str], int] = {}
        checked = 0
        for rec in self.records:
            seg = decode_segment(bytes.fromhex(rec["hex"])[40:])
            side = (rec["flow"], rec["dir"])
            if seg.flags & SYN:
                scale[side] = seg.wscale or 0
                self.assertNotIn("win_bytes", rec["summary"])
            elif "win_bytes" in rec["summary"]:
                shift = scale.get(side, 0) if not seg.flags & 0x04 else 0
                self.assertEqual(seg.window << shift, rec["summary"]["win_bytes"], rec["t"])
                checked += 1
        self.assertGreater(checked, 300)

    def test_partial_checksums_only_on_gro_merges(self) -> None:
        """The 10 packets whose checksum does not verify are exactly the GRO merges."""
        bad = [r for r in self.records
               if not verify_checksum(bytes.fromhex(r["hex"])[8:24], bytes.fromhex(r["hex"])[24:40],
                                      bytes.fromhex(r["hex"])[40:])]
        self.assertEqual(len(bad), 10)
        self.assertTrue(all("tun_offload" in r["summary"] for r in bad))

    def test_recomputed_checksums_match(self) -> None:
        """Zeroing the checksum field and recomputing gives the captured value (valid packets)."""
        for rec in self.records:
            if rec["summary"]["csum"] != "ok":
                continue
            p = bytearray.fromhex(rec["hex"])
            field = struct.unpack_from("!H", p, 56)[0]
            p[56:58] = b"\0\0"
            self.assertEqual(tcp_checksum(bytes(p[8:24]), bytes(p[24:40]), p[40:]), field)

    def test_gvisor_syn_options_layout(self) -> None:
        """Our SYN option encoder reproduces gVisor's SYN-ACK options byte for byte."""
        synack = bytes.fromhex(self.records[1]["hex"])
        ours = syn_options(1220, 8, (3635648260, 2981896983), sack_perm=True)
        self.assertEqual(synack[60:80], ours)

    def test_build_reproduces_rst(self) -> None:
        """build_tcp reproduces gVisor's RST,ACK for the closed port byte for byte."""
        rec = next(r for r in self.records if r["flow"] == "iii" and r["dir"] == "gvisor->kernel")
        p = bytes.fromhex(rec["hex"])
        s = rec["summary"]
        seg = build_tcp(p[8:24], p[24:40], s["sport"], s["dport"], 0, s["ack"], 0x14, 0)
        self.assertEqual(seg, p[40:])


class ChecksumTests(SynchronousTestCase):
    """The int.from_bytes checksum against a straightforward word loop."""

    @staticmethod
    def reference(data: bytes) -> int:
        if len(data) % 2:
            data += b"\0"
        s = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return s

    @settings(max_examples=200)
    @given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16),
           st.binary(min_size=20, max_size=300))
    def test_matches_reference(self, src: bytes, dst: bytes, seg: bytes) -> None:
        """Our checksum equals RFC 1071's word sum over pseudo-header + segment, and verifies."""
        seg = seg[:16] + b"\0\0" + seg[18:]
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), 6)
        expect = 0xFFFF ^ self.reference(pseudo + seg)
        got = tcp_checksum(src, dst, seg)
        self.assertEqual(got % 0xFFFF, expect % 0xFFFF)
        full = seg[:16] + struct.pack("!H", got) + seg[18:]
        self.assertTrue(verify_checksum(src, dst, full))

    def test_corruption_detected(self) -> None:
        """Flipping one payload bit breaks verification."""
        src, dst = bytes(range(16)), bytes(range(16, 32))
        seg = bytearray(build_tcp(src, dst, 1, 2, 3, 4, ACK, 5, b"", b"hello world"))
        self.assertTrue(verify_checksum(src, dst, seg))
        seg[-1] ^= 1
        self.assertFalse(verify_checksum(src, dst, seg))


class OptionTests(SynchronousTestCase):
    """Encoding and decoding options."""

    def test_round_trip(self) -> None:
        """Every option kind survives encode -> decode, in wire order."""
        opts = [("mss", 1220), ("sack_perm", True), ("ts", (1, 2)), ("nop", None),
                ("wscale", 8), ("sack", [(10, 20)]), ("unknown", (30, b"ab"))]
        raw = encode_options(opts)
        seg = decode_segment(build_tcp(bytes(16), bytes(16), 1, 2, 0, 0, SYN, 0, raw))
        decoded = [o for o in seg.options if o[0] != "eol"]
        self.assertEqual(decoded, opts)
        self.assertEqual((seg.mss, seg.wscale, seg.sack_perm, seg.tsval, seg.tsecr),
                         (1220, 8, True, 1, 2))

    def test_ts_fast_path(self) -> None:
        """The NOP NOP TS layout decodes through the fast path to the same fields."""
        seg = decode_segment(build_tcp(bytes(16), bytes(16), 1, 2, 0, 0, ACK, 0, ts_option(7, 9)))
        self.assertEqual((seg.tsval, seg.tsecr, seg.hdr_len), (7, 9, 32))

    def test_bad_inputs(self) -> None:
        """Short headers, impossible offsets and malformed options raise DecodeError."""
        good = build_tcp(bytes(16), bytes(16), 1, 2, 0, 0, ACK, 0)
        self.assertRaises(DecodeError, decode_segment, good[:19])
        bad_off = bytearray(good)
        bad_off[12] = 0x40
        self.assertRaises(DecodeError, decode_segment, bytes(bad_off))
        bad_off[12] = 0x60
        self.assertRaises(DecodeError, decode_segment, bytes(bad_off))
        for opt in (b"\x02\x03\x00\x00", b"\x03\x02\x00\x00", b"\x08\x0c" + bytes(10) + b"\0\0\0\0",
                    b"\x05\x03\x00\x00", b"\x22\x01\x00\x00", b"\x01\x01\x01\x02", b"\x02\x08\x00\x00"):
            raw = opt + bytes(-len(opt) % 4)
            seg = bytearray(build_tcp(bytes(16), bytes(16), 1, 2, 0, 0, ACK, 0, raw))
            self.assertRaises(DecodeError, decode_segment, bytes(seg))
        self.assertRaises(ValueError, encode_options, [("bogus", 1)])

    @settings(max_examples=200)
    @given(st.binary(max_size=80))
    def test_decoder_total(self, data: bytes) -> None:
        """Arbitrary bytes either decode or raise DecodeError, nothing else."""
        try:
            seg = decode_segment(data)
        except DecodeError:
            return
        self.assertGreaterEqual(seg.hdr_len, 20)
        self.assertEqual(len(seg.payload), len(data) - seg.hdr_len)

    @settings(max_examples=200)
    @given(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 2**32 - 1),
           st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 65535),
           st.one_of(st.none(), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))),
           st.binary(max_size=100))
    def test_round_trip_fields(self, sport, dport, seq, ack, flags, win, ts, payload) -> None:
        """build_tcp -> decode_segment returns every field and the payload, checksum valid."""
        opts = ts_option(*ts) if ts else b""
        raw = build_tcp(bytes(16), bytes(range(16)), sport, dport, seq, ack, flags, win, opts, payload)
        s = decode_segment(raw)
        self.assertEqual((s.sport, s.dport, s.seq, s.ack, s.flags, s.window, bytes(s.payload)),
                         (sport, dport, seq, ack, flags, win, payload))
        self.assertEqual((s.tsval, s.tsecr), ts if ts else (None, None))
        self.assertTrue(verify_checksum(bytes(16), bytes(range(16)), raw))


class SeqTests(SynchronousTestCase):
    """Modulo-2**32 comparisons."""

    def test_wraparound(self) -> None:
        """Numbers just past the wrap compare after numbers just before it."""
        a, b = 2**32 - 10, 5
        self.assertTrue(seq_lt(a, b) and seq_le(a, b) and seq_gt(b, a) and seq_ge(b, a))
        self.assertEqual(seq_diff(b, a), 15)
        self.assertEqual(seq_diff(a, b), -15)
        self.assertEqual(seq_add(a, 15), b)
        self.assertEqual(seq_max(a, b), b)
        self.assertTrue(seq_le(a, a) and seq_ge(a, a) and not seq_lt(a, a) and not seq_gt(a, a))

    @settings(max_examples=200)
    @given(st.integers(0, 2**32 - 1), st.integers(-(2**31) + 1, 2**31 - 1))
    def test_diff_inverts_add(self, a: int, n: int) -> None:
        """seq_diff(seq_add(a, n), a) == n for distances under 2**31."""
        self.assertEqual(seq_diff(seq_add(a, n), a), n)
        self.assertEqual(seq_gt(seq_add(a, n), a), n > 0)
