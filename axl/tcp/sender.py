# -*- test-case-name: tests.test_tcp_connection -*-
"""
The sending half of a L{axl.tcp.connection.Connection}: the send buffer, segmentation under
the peer's window and the congestion window (sender silly-window avoidance, no Nagle), zero-window
probes, the RFC 6298 retransmission timer with back-off, ACK processing with fast
retransmit/recovery and NewReno congestion control (RFC 5681, RFC 6582), limited transmit
(RFC 3042), and a SACK scoreboard that picks the holes to resend in recovery and counts SACKed
bytes out of the pipe (RFC 6675 style).

L{Sender} is a mixin: its state is set up by C{Connection.__init__}, and it calls the
connection's C{_send}, C{_send_syn}, C{_finish}, C{abort}, C{_enter_time_wait}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.error import ConnectionDone, TCPTimedOutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from axl.tcp.common import (
    CLOSED,
    CLOSING,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    SENDING,
    STATE_NAMES,
    SYN_RCVD,
    SYN_SENT,
    TIME_WAIT,
    AppEvents,
    TCPConfig,
)
from axl.tcp.rtt import RTOEstimator
from axl.tcp.segment import ACK, FIN, PSH, Segment
from axl.tcp.seq import MASK, seq_diff, seq_ge, seq_gt, seq_le, seq_lt

__all__ = ["Sender"]


class Sender:
    """Mixin with the send-side behaviour of a connection (see the module docstring)."""

    # Set up by Connection.__init__ (declared here for the type checker).
    cfg: TCPConfig
    _clock: IReactorTime
    app: AppEvents | None
    app_closed: bool
    state: int
    iss: int
    snd_una: int
    snd_nxt: int
    snd_max: int
    snd_wnd: int
    snd_ws: int
    smss: int
    ts_ok: bool
    cwnd: int
    ssthresh: int
    rto: RTOEstimator
    data_written_total: int
    data_acked_total: int
    on_acked: Callable[[int], None] | None
    _sbuf: bytearray
    _buf_seq: int
    _fin_queued: bool
    _max_snd_wnd: int
    _wl1: int
    _wl2: int
    _bytes_acked: int
    _dupacks: int
    _limited: int
    _recover: int
    _in_recovery: bool
    _rtt_seq: int | None
    _rtt_time: float
    _retries: int
    _probes: int
    _writable_wanted: bool
    sack_ok: bool
    _sacked: list[tuple[int, int]]
    _rexmit_next: int
    _sacked_bytes: int
    _ooo: dict[int, bytes]
    _ooo_ranges: list[list[int]]
    _rto_deadline: float | None
    _rto_call: IDelayedCall | None
    _persist_call: IDelayedCall | None
    _persist_backoff: int
    _close_call: IDelayedCall | None
    _output_call: IDelayedCall | None

    if TYPE_CHECKING:  # provided by Connection

        def _send(self, seq: int, flags: int, payload: bytes | bytearray | memoryview = b"") -> None: ...
        def _send_ack(self) -> None: ...
        def _send_syn(self, with_ack: bool) -> None: ...
        def _maybe_send_ack(self) -> None: ...
        def _ts_now(self) -> int: ...
        def _sack_option(self, max_blocks: int) -> bytes: ...
        def _finish(self, reason: Exception, rst: bool) -> None: ...
        def _enter_time_wait(self) -> None: ...
        def _close_timer_fired(self) -> None: ...
        def abort(self, reason: Exception | None = None) -> None: ...

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue application data; segments go out now or on the next clock turn."""
        if self.app_closed or self._fin_queued:
            raise RuntimeError("send after close")
        if self.state in (CLOSED, TIME_WAIT, LAST_ACK, CLOSING):
            raise RuntimeError(f"send in state {STATE_NAMES[self.state]}")
        self._sbuf += data
        self.data_written_total += len(data)
        if self.state in SENDING and self._output_call is None:
            self._output_call = self._clock.callLater(0, self._deferred_output)

    def wants_writable(self) -> None:
        """Call C{app.tcp_writable()} once the send buffer drops under half of C{snd_buf}."""
        self._writable_wanted = True

    def _deferred_output(self) -> None:
        self._output_call = None
        self._output()
        self._maybe_send_ack()

    def _arm_rto(self) -> None:
        self._rto_deadline = self._clock.seconds() + self.rto.rto
        if self._rto_call is None:
            self._rto_call = self._clock.callLater(self.rto.rto, self._rto_fired)

    def _stop_rto(self) -> None:
        self._rto_deadline = None

    def _rto_fired(self) -> None:
        self._rto_call = None
        if self._rto_deadline is None:
            return
        now = self._clock.seconds()
        if now < self._rto_deadline - 1e-9:
            self._rto_call = self._clock.callLater(self._rto_deadline - now, self._rto_fired)
            return
        self._rto_deadline = None
        self._timeout()

    def _timeout(self) -> None:
        self._retries += 1
        self.rto.back_off()
        self._rtt_seq = None
        st = self.state
        if st in (SYN_SENT, SYN_RCVD):
            if self._retries > self.cfg.syn_retries:
                self._finish(TCPTimedOutError(), rst=st == SYN_RCVD)
                return
            self._send_syn(st == SYN_RCVD)
            self._arm_rto()
            return
        if self._retries > self.cfg.max_retries:
            self.abort(TCPTimedOutError())
            return
        flight = seq_diff(self.snd_max, self.snd_una)
        if self._retries == 1:
            self.ssthresh = max(flight // 2, 2 * self.smss)
        self.cwnd = self.smss
        self._bytes_acked = 0
        self._recover = self.snd_max
        self._in_recovery = False
        self._rexmit_next = self.snd_una
        self._dupacks = self._limited = 0
        self.snd_nxt = self.snd_una
        self._output()
        if self._rto_deadline is None and self.snd_una != self.snd_max:
            self._arm_rto()

    def _start_persist(self) -> None:
        if self._persist_call is None:
            delay = min(max(self.rto.rto, 0.2) * (1 << self._persist_backoff), 60.0)
            self._persist_call = self._clock.callLater(delay, self._persist_fired)

    def _persist_fired(self) -> None:
        self._persist_call = None
        if self.state not in SENDING or self.snd_wnd:
            return
        self._probes += 1
        if self._probes > self.cfg.max_retries:        # nobody answers our window probes
            self.abort(TCPTimedOutError())
            return
        off = seq_diff(self.snd_nxt, self._buf_seq)
        if off < len(self._sbuf):
            probe = self._sbuf[off : off + 1]
            self._send(self.snd_nxt, ACK, probe)
            end = (self.snd_nxt + 1) & MASK
            if seq_gt(end, self.snd_max):
                self.snd_max = end
        self._persist_backoff = min(self._persist_backoff + 1, 9)
        self._start_persist()

    def _output(self) -> None:
        """Send what the windows allow (RFC 9293 3.8.6.2.1 sender SWS avoidance, no Nagle)."""
        if self.state not in SENDING:
            return
        sbuf = self._sbuf
        smss = self._max_data()
        cwnd = self.cwnd + self._limited
        if self._in_recovery and self._sacked:
            cwnd += self._sacked_bytes                  # SACKed data has left the network
        wnd = min(self.snd_wnd, cwnd)
        while True:
            nxt = self.snd_nxt
            off = seq_diff(nxt, self._buf_seq)
            avail = len(sbuf) - off
            if avail < 0:
                break
            usable = wnd - seq_diff(nxt, self.snd_una)
            n = min(avail, smss, usable)
            fin = self._fin_queued and n == avail and usable >= n
            if n <= 0:
                n = 0
                if not (fin and avail == 0):
                    break
            elif n < smss and n < avail and nxt != self.snd_una and n < self._max_snd_wnd // 2:
                break
            flags = ACK
            if n and n == avail:
                flags |= PSH
            if fin:
                flags |= FIN
            if self._rtt_seq is None and not self.ts_ok and nxt == self.snd_max:
                self._rtt_seq, self._rtt_time = nxt, self._clock.seconds()
            self._send(nxt, flags, memoryview(sbuf)[off : off + n] if n else b"")
            nxt = (nxt + n + (1 if fin else 0)) & MASK
            self.snd_nxt = nxt
            if seq_gt(nxt, self.snd_max):
                self.snd_max = nxt
            if self._rto_deadline is None:
                self._arm_rto()
            if fin:
                break
        if (self.snd_wnd == 0 and self.snd_una == self.snd_max
                and seq_diff(self.snd_nxt, self._buf_seq) < len(sbuf)):
            self._start_persist()

    def _retransmit_first(self) -> None:
        off = seq_diff(self.snd_una, self._buf_seq)
        avail = len(self._sbuf) - off
        n = min(avail, self._max_data())
        fin = self._fin_queued and n == avail
        flags = ACK | (FIN if fin else 0) | (PSH if n and n == avail else 0)
        if n <= 0 and not fin:
            return
        self._send(self.snd_una, flags, memoryview(self._sbuf)[off : off + n] if n > 0 else b"")
        end = (self.snd_una + max(n, 0)) & MASK
        if seq_gt(end, self._rexmit_next):
            self._rexmit_next = end

    def _max_data(self) -> int:
        """Payload per segment: SMSS less the room SACK blocks take while we hold a gap."""
        if self._ooo and self.sack_ok:                  # an upper bound of the option's size
            return self.smss - 4 - 8 * min(len(self._ooo_ranges), 3 if self.ts_ok else 4)
        return self.smss

    def _take_sack(self, blocks: list[tuple[int, int]]) -> bool:
        """
        Merge a segment's SACK blocks into the scoreboard (ranges above SND.UNA); returns
        whether it now covers more bytes than before.
        """
        una, top = self.snd_una, seq_diff(self.snd_max, self.snd_una)
        ranges = [(seq_diff(lo, una), seq_diff(hi, una)) for lo, hi in self._sacked]
        for lo, hi in blocks:
            a, b = seq_diff(lo, una), seq_diff(hi, una)
            if 0 < a < b <= top:                        # ignore D-SACKs and nonsense
                ranges.append((a, b))
        merged: list[list[int]] = []
        for a, b in sorted(r for r in ranges if r[1] > 0):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([max(a, 0), b])
        before = self._sacked_bytes
        self._sacked = [((una + a) & MASK, (una + b) & MASK) for a, b in merged[-16:]]
        self._sacked_bytes = sum(b - a for a, b in merged[-16:])
        return self._sacked_bytes > before

    def _retransmit_hole(self) -> bool:
        """
        In recovery, resend the next not-yet-retransmitted hole below the highest SACKed byte
        (one segment per ACK that arrives, RFC 6675 style). Returns whether it sent.
        """
        if not self._sacked:
            return False
        una = self.snd_una
        pos = max(seq_diff(self._rexmit_next, una), 0)
        for lo, hi in self._sacked:
            a, b = seq_diff(lo, una), seq_diff(hi, una)
            if pos < a:
                n = min(a - pos, self._max_data())
                off = seq_diff(una, self._buf_seq) + pos
                if off < 0 or off + n > len(self._sbuf):
                    return False
                self._send((una + pos) & MASK, ACK, memoryview(self._sbuf)[off : off + n])
                self._rexmit_next = (una + pos + n) & MASK
                return True
            pos = max(pos, b)
        return False

    def _process_ack(self, seg: Segment, seq: int) -> bool:
        ack = seg.ack
        una = self.snd_una
        self._probes = 0
        if seq_gt(ack, self.snd_max):
            self._send_ack()
            return False
        acked = seq_diff(ack, una)
        wnd = seg.window << self.snd_ws
        sacked_more = bool(seg.sack) and self._take_sack(seg.sack)
        if acked >= 0 and (seq_lt(self._wl1, seq) or (self._wl1 == seq and seq_le(self._wl2, ack))):
            # a duplicate ACK: nothing new acknowledged, same window (RFC 5681 2) or, with
            # SACK, newly SACKed data (RFC 6675 2: Linux's window grows on every ACK)
            if (acked == 0 and not seg.payload and not seg.flags & FIN and una != self.snd_max
                    and wnd and (wnd == self.snd_wnd or sacked_more)):
                self._dupack()
            elif acked == 0:
                self._dupacks = self._limited = 0
            self.snd_wnd = wnd
            self._max_snd_wnd = max(self._max_snd_wnd, wnd)
            self._wl1, self._wl2 = seq, ack
            if wnd and self._persist_call is not None:
                self._persist_call.cancel()
                self._persist_call = None
                self._persist_backoff = 0
        if acked <= 0:
            return True
        # new data acknowledged
        if self.ts_ok and seg.tsecr:
            self.rto.sample(((self._ts_now() - seg.tsecr) & MASK) / 1000.0)
        elif self._rtt_seq is not None and seq_gt(ack, self._rtt_seq):
            self.rto.sample(self._clock.seconds() - self._rtt_time)
            self._rtt_seq = None
        self.rto.clear_back_off()
        self._retries = 0
        fin_acked = self._fin_queued and seq_diff(ack, self._buf_seq) > len(self._sbuf)
        data_acked = seq_diff(ack, self._buf_seq)
        if data_acked > 0:
            data_acked = min(data_acked, len(self._sbuf))            # the FIN was acknowledged too
            del self._sbuf[:data_acked]
            self._buf_seq = (self._buf_seq + data_acked) & MASK
            self.data_acked_total += data_acked
            if self.on_acked is not None:
                self.on_acked(self.data_acked_total)
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if self._sacked:
            self._take_sack([])                         # drop what the ACK now covers
        smss = self.smss
        if self._in_recovery:
            if seq_ge(ack, self._recover):              # full ACK (RFC 6582 3.2 step 3)
                self._in_recovery = False
                self.cwnd = self.ssthresh
            else:                                       # partial ACK (step 4)
                # resend the first hole even if SACK recovery resent it already: a lost
                # retransmission then costs one duplicate, not an RTO
                self._retransmit_first()
                if not self._sacked:                    # NewReno deflation; with SACK, see _output
                    self.cwnd = max(self.cwnd - acked + (smss if acked >= smss else 0), smss)
                self._arm_rto()
        elif self.cwnd < self.ssthresh:
            self.cwnd += min(acked, 2 * smss)           # slow start, L = 2 SMSS (RFC 3465)
        else:
            self._bytes_acked += acked
            if self._bytes_acked >= self.cwnd:
                self._bytes_acked -= self.cwnd
                self.cwnd += smss
        self._dupacks = 0 if not self._in_recovery else self._dupacks
        self._limited = 0
        if ack == self.snd_max:
            self._stop_rto()
        elif not self._in_recovery:
            self._arm_rto()
        st = self.state
        if fin_acked:
            if st == FIN_WAIT_1:
                self.state = FIN_WAIT_2
                if self.app_closed and self._close_call is None:
                    self._close_call = self._clock.callLater(self.cfg.fin_wait_2,
                                                             self._close_timer_fired)
            elif st == CLOSING:
                self._enter_time_wait()
            elif st == LAST_ACK:
                self._finish(ConnectionDone(), rst=False)
                return False
        if self._writable_wanted and len(self._sbuf) <= self.cfg.snd_buf // 2:
            self._writable_wanted = False
            if self.app is not None:
                self.app.tcp_writable()
        return True

    def _dupack(self) -> None:
        self._dupacks += 1
        smss = self.smss
        if self._dupacks == 3 and not self._in_recovery:
            if seq_gt(self.snd_una, self._recover):
                flight = seq_diff(self.snd_max, self.snd_una)
                self.ssthresh = max(flight // 2, 2 * smss)
                self._recover = self.snd_max
                self._in_recovery = True
                self._rtt_seq = None
                self._rexmit_next = self.snd_una
                self._retransmit_first()
                # with SACK, SACKed bytes count as gone from the network in _output (RFC 6675
                # "pipe"); without, NewReno inflates by the three segments that left
                self.cwnd = self.ssthresh if self._sacked else self.ssthresh + 3 * smss
                self._arm_rto()
        elif self._in_recovery:
            if self._sacked:
                self._retransmit_hole()
            else:
                self.cwnd += smss                       # inflate (RFC 5681 3.2 step 4)
        if self._dupacks < 3 and not self._in_recovery:
            self._limited = self._dupacks * smss        # limited transmit (RFC 3042)
        else:
            self._limited = 0
