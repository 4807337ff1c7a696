# -*- test-case-name: tests.test_tcp_connection -*-
"""
One TCP connection as a sans-IO machine (RFC 9293 section 3.10): decoded segments in, segments
out through an injected C{emit} callable, application events out through an L{AppEvents}
object, timers on an injected clock.

Implemented: three-way handshake and simultaneous open; MSS (lowered by ICMPv6 Packet Too Big,
RFC 8201); window scaling and timestamps (RFC 7323, RTT from TSecr, TS.Recent); sliding window
with sender/receiver silly-window avoidance and zero-window probes; RFC 6298 RTO with back-off;
fast retransmit/recovery with NewReno (RFC 5681/6582) and limited transmit (RFC 3042); SACK
(RFC 2018) both ways: blocks on our segments while we hold out-of-order data, and the peer's
blocks drive hole retransmission in recovery (RFC 6675 style); FIN/half-close, RST (with
RFC 5961 challenge ACKs), TIME_WAIT; delayed ACKs (RFC 5681 4.2) with Linux's quick-ACK
heuristics (L{Connection._maybe_send_ack}), so a lone small message is acknowledged at once
rather than after 40 ms. Not implemented: urgent data, keepalive, D-SACK, RACK, Linux's
"pingpong" (interactive) mode that holds the ACK of a request for the reply to carry.

The state is a plain integer rather than an automat machine: this runs once per segment and the
per-segment cost decides throughput.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable

from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from axl.tcp.common import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    DEFAULT_IPV6_MSS,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    RECEIVING,
    SENDING,
    STATE_NAMES,
    SYN_RCVD,
    SYN_SENT,
    TIME_WAIT,
    AppEvents,
    Emit,
    TCPConfig,
)
from axl.tcp.rtt import RTOEstimator
from axl.tcp.segment import ACK, FIN, PSH, RST, SYN, Segment, syn_options, ts_option
from axl.tcp.sender import Sender
from axl.tcp.seq import MASK, seq_diff, seq_gt, seq_le, seq_lt

_SACK_BLOCK = struct.Struct("!II")
MAX_OOO_SEGMENTS = 4096       # out-of-order segments held per connection (the window bounds bytes)
MAX_QUICKACKS = 16            # data segments ACKed one by one after the start or an idle spell

__all__ = [
    "CLOSED", "CLOSE_WAIT", "CLOSING", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "LAST_ACK",
    "STATE_NAMES", "SYN_RCVD", "SYN_SENT", "TIME_WAIT", "AppEvents", "Connection", "Emit",
    "TCPConfig",
]


class Connection(Sender):
    """
    One connection. C{emit(seq, ack, flags, window_field, options, payload)} sends a segment;
    C{release(conn)} is called once when the connection reaches CLOSED for good;
    C{on_established(conn)} (passive opens) once it is established.
    """

    def __init__(self, config: TCPConfig, clock: IReactorTime, emit: Emit, iss: int,
                 ts_offset: int = 0, release: Callable[[Connection], None] | None = None) -> None:
        self.cfg, self._clock, self._emit, self._release = config, clock, emit, release
        self.app: AppEvents | None = None
        self.on_established: Callable[[Connection], None] | None = None
        self.state = CLOSED
        self.iss = iss
        self.snd_una = self.snd_nxt = self.snd_max = iss
        self._buf_seq = (iss + 1) & MASK        # sequence number of _sbuf[0]
        self._sbuf = bytearray()
        self._fin_queued = False
        self.data_written_total = 0             # bytes the app has sent, ever
        self.data_acked_total = 0               # of which the peer has acknowledged
        self.on_acked: Callable[[int], None] | None = None
        self.snd_wnd = 0
        self._max_snd_wnd = 0
        self._wl1 = self._wl2 = 0
        self.irs = self.rcv_nxt = 0
        self._rcv_abs = 0                       # rcv_nxt as an unwrapped stream offset
        self._rcv_adv = 0                       # right edge we advertised
        self._ooo: dict[int, bytes] = {}
        self._ooo_ranges: list[list[int]] = []  # the same data as merged [start, end) ranges
        self._ooo_fin: int | None = None        # unwrapped offset of an early FIN
        self._rpending = bytearray()            # received, not yet delivered (reading paused)
        self._reading = True
        self._eof_pending = False
        self._last_ack_sent = 0
        self._unacked_segs = 0
        self._ack_now = False
        self._ack_pushed = False                # an unacked in-order segment carried PSH
        self._quickacks = 0                     # data segments still to ACK at once
        self._last_data_time = float("-inf")    # when the last in-order data found nothing unacked
        # options
        self.peer_mss = DEFAULT_IPV6_MSS
        self._pmtu_mss = config.advertised_mss
        self.snd_ws = self.rcv_ws = 0
        self._rcv_ws_offer = max(0, min(14, (config.rcv_buf - 1).bit_length() - 16))
        self.ts_ok = False
        self.sack_ok = False                    # both SYNs carried SACK-permitted
        self._last_ooo = 0
        self._sacked: list[tuple[int, int]] = []   # SACKed ranges above SND.UNA (seq numbers)
        self._rexmit_next = iss                 # next hole to retransmit in recovery
        self._sacked_bytes = 0
        self._peer_ws = False
        self._ts_offset = ts_offset
        self._ts_recent = 0
        self.smss = 536
        # congestion control
        self.cwnd = 0
        self.ssthresh = 1 << 30
        self._bytes_acked = 0
        self._dupacks = 0
        self._limited = 0                       # limited-transmit allowance (RFC 3042)
        self._recover = iss
        self._in_recovery = False
        self._rtt_seq: int | None = None
        self._rtt_time = 0.0
        self.rto = RTOEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self._retries = 0
        # timers
        self._rto_deadline: float | None = None
        self._rto_call: IDelayedCall | None = None
        self._delack_call: IDelayedCall | None = None
        self._persist_call: IDelayedCall | None = None
        self._persist_backoff = 0
        self._probes = 0                        # window probes without any ACK in reply
        self._close_call: IDelayedCall | None = None
        self._output_call: IDelayedCall | None = None
        self._writable_wanted = False
        self.app_closed = False                 # the app called close(); no more sends
        self._closed_reported = False

    # ---- opening -----------------------------------------------------------------------------

    def open_active(self) -> None:
        """Send a SYN (CLOSED -> SYN_SENT)."""
        self.state = SYN_SENT
        self.snd_nxt = self.snd_max = (self.iss + 1) & MASK
        self._send_syn(False)
        self._arm_rto()

    def open_passive(self, syn: Segment) -> None:
        """Answer a listener's SYN with a SYN-ACK (LISTEN -> SYN_RECEIVED)."""
        self.state = SYN_RCVD
        self._take_syn(syn)
        self.snd_nxt = self.snd_max = (self.iss + 1) & MASK
        self._send_syn(True)
        self._arm_rto()

    def _take_syn(self, seg: Segment) -> None:
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & MASK
        self._rcv_abs = 0
        if seg.mss is not None:
            self.peer_mss = max(seg.mss, 64)
        self._peer_ws = seg.wscale is not None
        if seg.wscale is not None:
            self.snd_ws = min(seg.wscale, 14)
            self.rcv_ws = self._rcv_ws_offer
        else:
            self.snd_ws = self.rcv_ws = 0
        self.ts_ok = seg.tsval is not None
        # we offer SACK-permitted on every SYN, so the peer's offer decides (RFC 2018 2)
        self.sack_ok = seg.sack_perm
        if seg.tsval is not None:
            self._ts_recent = seg.tsval
        self._update_smss()
        self.cwnd = min(self.cfg.initial_window * self.smss, max(2 * self.smss, 14600))
        # the window our SYN or SYN-ACK offers (unscaled) starts at RCV.NXT
        self._rcv_adv = (self.rcv_nxt + min(self.cfg.rcv_buf, 65535)) & MASK
        self.snd_wnd = seg.window          # never scaled on a SYN (RFC 7323 2.2)
        self._max_snd_wnd = self.snd_wnd
        self._wl1, self._wl2 = seg.seq, seg.ack

    def _send_syn(self, with_ack: bool) -> None:
        """A SYN offers everything; a SYN-ACK only echoes what the peer's SYN offered."""
        if with_ack:
            ws = self.rcv_ws if self._peer_ws else None
            ts = (self._ts_now(), self._ts_recent) if self.ts_ok else None
            sack = self.sack_ok
        else:
            ws = self._rcv_ws_offer
            ts = (self._ts_now(), 0)
            sack = True
        opts = syn_options(self.cfg.advertised_mss, ws, ts, sack_perm=sack)
        win = min(self.cfg.rcv_buf, 65535)
        self._rcv_adv = (self.rcv_nxt + win) & MASK
        self._last_ack_sent = self.rcv_nxt
        self._emit(self.iss, self.rcv_nxt if with_ack else 0, SYN | ACK if with_ack else SYN, win,
                   opts, b"")

    def _update_smss(self) -> None:
        mss = min(self.peer_mss, self._pmtu_mss, self.cfg.advertised_mss)
        self.smss = max(mss - (12 if self.ts_ok else 0), 64)

    def lower_mtu(self, mtu: int) -> None:
        """An ICMPv6 Packet Too Big reported C{mtu} for this path (RFC 8201): shrink segments."""
        mss = max(mtu, 1280) - 60
        if mss < self._pmtu_mss:
            self._pmtu_mss = mss
            self._update_smss()
            if self.cwnd > self.smss and self.state in SENDING:
                self.snd_nxt = self.snd_una     # resend what was too big
                self._output()

    # ---- application side --------------------------------------------------------------------

    @property
    def send_buffered(self) -> int:
        """Bytes written by the app and not yet acknowledged."""
        return len(self._sbuf)

    def close(self) -> None:
        """Half-close: send FIN after the queued data (RFC 9293 CLOSE call)."""
        if self._fin_queued:
            return
        st = self.state
        if st in (CLOSED, SYN_SENT):
            self._finish(ConnectionDone("closed before established"), rst=False)
            return
        self._fin_queued = True
        if st in (SYN_RCVD, ESTABLISHED):
            self.state = FIN_WAIT_1 if st == ESTABLISHED else st
        elif st == CLOSE_WAIT:
            self.state = LAST_ACK
        if self.state in SENDING:
            self._output()

    def abort(self, reason: Exception | None = None) -> None:
        """Send RST and drop everything (RFC 9293 ABORT call)."""
        if self.state == CLOSED:
            return
        if self.state not in (SYN_SENT, TIME_WAIT):
            self._emit(self.snd_nxt, self.rcv_nxt, RST | ACK, 0, b"", b"")
        self._finish(reason or ConnectionAborted(), rst=True)

    def pause_reading(self) -> None:
        """Stop delivering data; the receive window closes as data accumulates."""
        self._reading = False

    def resume_reading(self) -> None:
        """Deliver what accumulated and reopen the window."""
        self._reading = True
        if self._rpending:
            data = bytes(self._rpending)
            del self._rpending[:]
            if self.app is not None:
                self.app.tcp_data(data)
        if self._eof_pending and self._reading:
            self._eof_pending = False
            if self.app is not None:
                self.app.tcp_eof()
            self._maybe_report_time_wait()
        if self.state in RECEIVING or self.state == CLOSE_WAIT:
            edge_gain = seq_diff((self.rcv_nxt + self._rcv_window()) & MASK, self._rcv_adv)
            if edge_gain >= min(self.cfg.rcv_buf // 2, 2 * self.smss):
                self._send_ack()
            elif self._ack_pushed and self._unacked_segs and self._reading:
                self._send_ack()                # the app drained a pushed segment: ACK it now

    # ---- timers ------------------------------------------------------------------------------

    def _delack_fired(self) -> None:
        self._delack_call = None
        if self._unacked_segs and self.state != CLOSED:
            self._send_ack()

    def _enter_time_wait(self) -> None:
        self.state = TIME_WAIT
        self._stop_rto()
        self._maybe_report_time_wait()
        if self._close_call is not None:
            self._close_call.cancel()
        self._close_call = self._clock.callLater(self.cfg.time_wait, self._close_timer_fired)

    def _maybe_report_time_wait(self) -> None:
        """In TIME_WAIT the app hears 'closed' once it has had all data and the EOF."""
        if self.state == TIME_WAIT and not self._rpending and not self._eof_pending:
            self._report_closed(ConnectionDone())

    def _close_timer_fired(self) -> None:
        self._close_call = None
        if self.state == TIME_WAIT:
            self._finish(ConnectionDone(), rst=False)
        elif self.state == FIN_WAIT_2:
            self._finish(ConnectionDone("FIN_WAIT_2 timed out"), rst=False)

    def cancel_timers(self) -> None:
        """Cancel every pending call of this connection."""
        for name in ("_rto_call", "_delack_call", "_persist_call", "_close_call", "_output_call"):
            call = getattr(self, name)
            if call is not None:
                if call.active():
                    call.cancel()
                setattr(self, name, None)
        self._rto_deadline = None

    def _finish(self, reason: Exception, rst: bool) -> None:
        self.state = CLOSED
        self.cancel_timers()
        self._sbuf = bytearray()
        self._ooo.clear()
        self._ooo_ranges.clear()
        if self._release is not None:
            self._release(self)
            self._release = None
        self._report_closed(reason)

    def _report_closed(self, reason: Exception) -> None:
        if not self._closed_reported:
            self._closed_reported = True
            if self.app is not None:
                self.app.tcp_closed(reason)

    # ---- output ------------------------------------------------------------------------------

    def _ts_now(self) -> int:
        return (int(self._clock.seconds() * 1000) + self._ts_offset) & MASK

    def _rcv_window(self) -> int:
        avail = self.cfg.rcv_buf - len(self._rpending)
        limit = 65535 << self.rcv_ws
        adv = seq_diff(self._rcv_adv, self.rcv_nxt)
        if avail < min(self.cfg.rcv_buf // 2, self.smss):   # receiver SWS avoidance
            avail = 0
        return min(max(avail, adv, 0), limit)

    def _send(self, seq: int, flags: int, payload: bytes | bytearray | memoryview = b"") -> None:
        wnd = self._rcv_window()
        field = wnd >> self.rcv_ws
        self._rcv_adv = (self.rcv_nxt + (field << self.rcv_ws)) & MASK
        self._last_ack_sent = self.rcv_nxt
        self._unacked_segs = 0
        self._ack_now = False
        self._ack_pushed = False
        opts = ts_option(self._ts_now(), self._ts_recent) if self.ts_ok else b""
        if self._ooo and self.sack_ok:              # data segments were shortened to fit
            opts += self._sack_option(3 if self.ts_ok else 4)
        self._emit(seq, self.rcv_nxt, flags, field, opts, payload)

    def _sack_option(self, max_blocks: int) -> bytes:
        """
        SACK blocks for the out-of-order data we hold (RFC 2018 4): the block with the most
        recently received segment first, then the others from the highest. Sent on every
        segment while we hold a gap; data segments are shortened by its size (C{_max_data}) so
        they never exceed the peer's MSS.
        """
        ranges = self._ooo_ranges
        i = bisect.bisect_right(ranges, [self._last_ooo, 1 << 62]) - 1
        first = ranges[i] if i >= 0 and self._last_ooo < ranges[i][1] else None
        blocks = [first] if first is not None else []
        for r in reversed(ranges):
            if len(blocks) >= max_blocks:
                break
            if r is not first:
                blocks.append(r)
        base = self.irs + 1
        body = b"".join(_SACK_BLOCK.pack((base + a) & MASK, (base + b) & MASK) for a, b in blocks)
        return b"\x01\x01\x05" + bytes((2 + 8 * len(blocks),)) + body

    def _send_ack(self) -> None:
        self._send(self.snd_nxt, ACK)

    def _maybe_send_ack(self) -> None:
        """
        ACK at once (Linux's heuristics) when: something asks for it (out-of-order data, FIN,
        a duplicate); two segments are unacknowledged (RFC 5681 4.2); we are in quick-ACK mode
        (the first L{MAX_QUICKACKS} data segments, and again after an idle spell, so the peer's
        slow start is not slowed down); or a segment carried PSH and the app has taken all the
        data, so no more is due and a delayed ACK would only stall the sender (a request or a
        message whose end the sender waits to see acknowledged). Otherwise the delayed-ACK timer
        runs.
        """
        n = self._unacked_segs
        if self._ack_now or n >= 2:
            self._send_ack()
        elif n:
            if self._quickacks:
                self._quickacks -= 1
                self._send_ack()
            elif self._ack_pushed and self._reading and not self._rpending:
                self._send_ack()
            elif self._delack_call is None:
                self._delack_call = self._clock.callLater(self.cfg.delayed_ack, self._delack_fired)

    # ---- input -------------------------------------------------------------------------------

    def segment_arrived(self, seg: Segment) -> None:
        """Process one segment addressed to this connection (RFC 9293 3.10.7)."""
        st = self.state
        if st == SYN_SENT:
            self._syn_sent(seg)
            return
        if st == CLOSED:
            return
        flags = seg.flags
        seq = seg.seq
        payload = seg.payload
        if flags & SYN:
            if seq == self.irs and st == SYN_RCVD and flags & ACK and not flags & RST:
                flags &= ~SYN                           # simultaneous open: their SYN-ACK
                seq = (seq + 1) & MASK
            elif seq == self.irs and not flags & RST:
                if st == SYN_RCVD:
                    self._send_syn(True)
                else:
                    self._send_ack()
                return
        # PAWS (RFC 7323 5.3)
        if (self.ts_ok and seg.tsval is not None and not flags & RST
                and seq_lt(seg.tsval, self._ts_recent)):
            self._send_ack()
            return
        # acceptability (RFC 9293 3.10.7.4 first)
        seg_len = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        wnd = max(seq_diff(self._rcv_adv, self.rcv_nxt), 0)
        d = seq_diff(seq, self.rcv_nxt)
        if seg_len == 0:
            ok = d == 0 if wnd == 0 else 0 <= d < wnd
        elif wnd == 0:
            ok = False
        else:
            ok = (0 <= d < wnd) or (0 <= d + seg_len - 1 < wnd)
        if not ok:
            if not flags & RST:
                self._send_ack()
            return
        if flags & RST:
            if d == 0:
                if st == SYN_RCVD and self.app is None:
                    self._finish(ConnectionRefusedError(), rst=True)
                elif st in (CLOSING, LAST_ACK, TIME_WAIT):
                    self._finish(ConnectionDone(), rst=True)
                else:
                    self._finish(ConnectionLost("connection reset by peer"), rst=True)
            else:
                self._send_ack()                        # challenge ACK (RFC 5961 3.2)
            return
        if flags & SYN:
            self._send_ack()                            # challenge ACK (RFC 5961 4.2)
            return
        if not flags & ACK:
            return
        if st == SYN_RCVD:
            if not (seq_gt(seg.ack, self.snd_una) and seq_le(seg.ack, self.snd_max)):
                self._emit(seg.ack, 0, RST, 0, b"", b"")
                return
            self.state = ESTABLISHED if not self._fin_queued else FIN_WAIT_1
            self._retries = 0
            self.snd_wnd = seg.window << self.snd_ws
            self._max_snd_wnd = self.snd_wnd
            self._wl1, self._wl2 = seq, seg.ack
            if self.on_established is not None:
                self.on_established(self)
            if self.state == CLOSED:
                return
        if self.ts_ok and seg.tsval is not None and seq_le(seq, self._last_ack_sent):
            self._ts_recent = seg.tsval
        if not self._process_ack(seg, seq):
            return
        st = self.state
        if st == TIME_WAIT:
            if flags & FIN:
                self._send_ack()
                if self._close_call is not None:
                    self._close_call.reset(self.cfg.time_wait)
            return
        if st == CLOSED:
            return
        chunks: list[bytes] = []
        fin_now = False
        if st in RECEIVING:
            if payload:
                self._receive(seq, payload, chunks)
                if chunks and flags & PSH:
                    self._ack_pushed = True
            if flags & FIN:
                fin_abs = self._rcv_abs + seq_diff(seq, self.rcv_nxt) + len(payload)
                self._ooo_fin = fin_abs
                self._ack_now = True
            if self._ooo_fin is not None and self._ooo_fin == self._rcv_abs:
                fin_now = True
        app = self.app
        if chunks and app is not None:                  # data first, then EOF, then closed
            if self._reading and not self._rpending:
                for c in chunks:
                    app.tcp_data(c)
                    if self.state == CLOSED:
                        return
            else:
                for c in chunks:
                    self._rpending += c
        if fin_now and self._ooo_fin == self._rcv_abs:
            self._ooo_fin = None
            self.rcv_nxt = (self.rcv_nxt + 1) & MASK
            self._rcv_abs += 1
            self._ack_now = True
            self._eof_pending = True
            if self.state == ESTABLISHED:
                self.state = CLOSE_WAIT
            elif self.state == FIN_WAIT_1:
                self.state = CLOSING
            elif self.state == FIN_WAIT_2:
                self._send_ack()
                self._enter_time_wait()
            if self._reading and not self._rpending:
                self._eof_pending = False
                if app is not None:
                    app.tcp_eof()
                self._maybe_report_time_wait()
            if self.state == CLOSED:
                return
        if self.state in SENDING:
            self._output()
        if self.state != CLOSED:
            self._maybe_send_ack()

    def _receive(self, seq: int, payload: memoryview, chunks: list[bytes]) -> None:
        d = seq_diff(seq, self.rcv_nxt)
        n = len(payload)
        if d < 0:
            payload = payload[-d:]
            n += d
            d = 0
        right = max(seq_diff(self._rcv_adv, self.rcv_nxt), 0)
        if d + n > right:
            payload = payload[: max(right - d, 0)]
            n = len(payload)
        if n <= 0:
            self._ack_now = True
            return
        if d:
            key = self._rcv_abs + d
            old = self._ooo.get(key)
            if old is None and len(self._ooo) >= MAX_OOO_SEGMENTS:
                self._ack_now = True                    # tiny-segment flood: keep memory bounded
                return
            if old is None or len(old) < n:
                self._ooo[key] = bytes(payload)
                self._add_ooo_range(key, key + n)
            self._last_ooo = key
            self._ack_now = True                        # duplicate ACK for fast retransmit
            return
        chunks.append(bytes(payload))
        if not self._unacked_segs:                      # (every other segment in bulk: cheap)
            now = self._clock.seconds()
            if now - self._last_data_time > self.rto.rto:
                self._quickacks = MAX_QUICKACKS         # the first data, or after an idle spell
            self._last_data_time = now
        self._rcv_abs += n
        if self._ooo:
            self._drain_ooo(chunks)
            self._ack_now = True
        self.rcv_nxt = (self.irs + 1 + self._rcv_abs) & MASK
        self._unacked_segs += 1

    def _drain_ooo(self, chunks: list[bytes]) -> None:
        ooo = self._ooo
        while ooo:
            data = ooo.pop(self._rcv_abs, None)
            if data is None:
                start = min(ooo)
                if start > self._rcv_abs:
                    break
                data = ooo.pop(start)
                skip = self._rcv_abs - start
                if skip >= len(data):
                    continue
                data = data[skip:]
            chunks.append(data)
            self._rcv_abs += len(data)
        ranges = self._ooo_ranges                       # forget the ranges now delivered
        k = 0
        while k < len(ranges) and ranges[k][0] <= self._rcv_abs:
            k += 1
        del ranges[:k]

    def _add_ooo_range(self, start: int, end: int) -> None:
        """Merge [start, end) into the sorted, disjoint ranges of out-of-order data we hold."""
        r = self._ooo_ranges
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

    def _syn_sent(self, seg: Segment) -> None:
        flags = seg.flags
        ack_ok = False
        if flags & ACK:
            if seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max):
                if not flags & RST:
                    self._emit(seg.ack, 0, RST, 0, b"", b"")
                return
            ack_ok = True
        if flags & RST:
            if ack_ok:
                self._finish(ConnectionRefusedError(), rst=True)
            return
        if not flags & SYN:
            return
        self._peer_ws = seg.wscale is not None
        self._take_syn(seg)
        self._retries = 0
        if ack_ok:
            self.snd_una = seg.ack
            self.state = ESTABLISHED
            self._stop_rto()
            self.rto.clear_back_off()
            self._send_ack()
            if self.app is not None:
                self.app.tcp_established()
            if self.state == ESTABLISHED:
                self._output()
        else:
            self.state = SYN_RCVD                       # simultaneous open
            self._send_syn(True)
