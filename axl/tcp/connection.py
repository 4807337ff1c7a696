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

L{Connection} is the one state machine; it owns small collaborators with narrow inputs and
outputs, each tested on its own: the send buffer (L{axl.tcp.sendbuf.SendBuffer}), the SACK
scoreboard (L{axl.tcp.sack.SackScoreboard}), congestion control (L{axl.tcp.congestion.NewReno}),
the RTT/RTO estimator (L{axl.tcp.rtt.RTOEstimator}) and the receiver's out-of-order queue
(L{axl.tcp.reassembly.OutOfOrderQueue}). Segmentation, the timers and every state change stay
here. The state is a plain integer rather than an automat machine: this runs once per segment
and the per-segment cost decides throughput.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    TCPTimedOutError,
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
    RcvBudget,
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
from axl.tcp.congestion import ENTER_RECOVERY, RESEND_HOLE, NewReno
from axl.tcp.reassembly import MAX_OOO_SEGMENTS, OutOfOrderQueue
from axl.tcp.rtt import RTOEstimator
from axl.tcp.sack import SackScoreboard
from axl.tcp.segment import ACK, FIN, PSH, RST, SYN, Segment, syn_options, ts_option
from axl.tcp.sendbuf import SendBuffer
from axl.tcp.seq import MASK, seq_diff, seq_gt, seq_le, seq_lt

MAX_QUICKACKS = 16            # data segments ACKed one by one after the start or an idle spell

__all__ = [
    "CLOSED", "CLOSE_WAIT", "CLOSING", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "LAST_ACK",
    "STATE_NAMES", "SYN_RCVD", "SYN_SENT", "TIME_WAIT", "AppEvents", "Connection", "Emit",
    "TCPConfig",
]


#: The most a resumed connection hands its app in one C{dataReceived} (it stops early as soon
#: as the app pauses again).
DELIVERY_PIECE = 64 * 1024


class Connection:
    """
    One connection. C{emit(seq, ack, flags, window_field, options, payload)} sends a segment;
    C{release(conn)} is called once when the connection reaches CLOSED for good;
    C{on_established(conn)} (passive opens) once it is established.
    """

    def __init__(self, config: TCPConfig, clock: IReactorTime, emit: Emit, iss: int,
                 ts_offset: int = 0, release: Callable[[Connection], None] | None = None,
                 budget: RcvBudget | None = None) -> None:
        self.budget = budget if budget is not None else RcvBudget(config.rcv_budget)
        self.cfg, self._clock, self._emit, self._release = config, clock, emit, release
        self.app: AppEvents | None = None
        self.on_established: Callable[[Connection], None] | None = None
        self.local_port = 0                     # the stack's demultiplexing key, set by it
        self.remote_key = b""
        self.remote_port = 0
        self.state = CLOSED
        self.iss = iss
        self.snd_una = self.snd_nxt = self.snd_max = iss
        self.sndbuf = SendBuffer(iss + 1)       # unacknowledged data, then maybe a FIN
        self.on_acked: Callable[[int], None] | None = None
        self.snd_wnd = 0
        self._max_snd_wnd = 0
        self._wl1 = self._wl2 = 0
        self.irs = self.rcv_nxt = 0
        self._rcv_abs = 0                       # rcv_nxt as an unwrapped stream offset
        self._rcv_adv = 0                       # right edge we advertised
        self.ooo = OutOfOrderQueue(self.budget)  # data above RCV.NXT (charged to the budget)
        self._fin_offset: int | None = None     # unwrapped offset of a FIN (maybe early)
        self._rpending = bytearray()            # received, not yet delivered (reading paused)
        self._charged = 0                       # of it, what L{budget} counts (all but on close)
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
        self.rcv_space = config.rcv_buf          # the receive buffer now (auto-tuned)
        self._rcv_space_max = max(config.rcv_buf, config.rcv_buf_max)
        self._rcv_ws_offer = max(0, min(14, (self._rcv_space_max - 1).bit_length() - 16))
        self._drs_time = float("-inf")          # start of the receive-rate measurement
        self._drs_abs = 0                       # _rcv_abs then
        self._drs_rtt = 0.0                     # its length: the receiver's RTT estimate
        self.ts_ok = False
        self.sack_ok = False                    # both SYNs carried SACK-permitted
        self.scoreboard = SackScoreboard(iss)   # what the peer SACKed
        self._peer_ws = False
        self._ts_offset = ts_offset
        self._ts_recent = 0
        self.smss = 536
        self.cc = NewReno(iss)
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
        self.cc.start(self.smss, self.cfg.initial_window)
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
            if self.cc.cwnd > self.smss and self.state in SENDING:
                self.snd_nxt = self.snd_una     # resend what was too big
                self._output()

    # ---- application side --------------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue application data; segments go out now or on the next clock turn."""
        if self.app_closed or self.sndbuf.fin_queued:
            raise RuntimeError("send after close")
        if self.state in (CLOSED, TIME_WAIT, LAST_ACK, CLOSING):
            raise RuntimeError(f"send in state {STATE_NAMES[self.state]}")
        self.sndbuf.append(data)
        if self.state in SENDING and self._output_call is None:
            self._output_call = self._clock.callLater(0, self._deferred_output)

    def wants_writable(self) -> None:
        """Call C{app.tcp_writable()} once the send buffer drops under half of L{send_limit}."""
        self._writable_wanted = True

    @property
    def send_buffered(self) -> int:
        """Bytes written by the app and not yet acknowledged."""
        return len(self.sndbuf)

    @property
    def send_limit(self) -> int:
        """
        Unacknowledged bytes above which the app's producer should pause: C{snd_buf}, grown
        (send-buffer auto-tuning, as Linux does) to twice the flight the congestion window and
        the peer's largest window allow (one round trip in flight, one queued behind it), so a
        long fat path stays full; never above C{snd_buf_max}.
        """
        cfg = self.cfg
        flight = min(self.cc.cwnd, self._max_snd_wnd)
        return min(max(cfg.snd_buf, 2 * flight), max(cfg.snd_buf_max, cfg.snd_buf))

    def close(self) -> None:
        """Half-close: send FIN after the queued data (RFC 9293 CLOSE call)."""
        if self.sndbuf.fin_queued:
            return
        st = self.state
        if st in (CLOSED, SYN_SENT):
            self._finish(ConnectionDone("closed before established"), rst=False)
            return
        self.sndbuf.fin_queued = True
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
        # In pieces, stopping as soon as the app pauses again: an app that makes room for one
        # message (the message listener's budget) is not handed everything held at once.
        while self._rpending and self._reading and self.state != CLOSED:
            piece = bytes(self._rpending[:DELIVERY_PIECE])
            del self._rpending[:DELIVERY_PIECE]
            released = min(self._charged, len(piece))
            self.budget.release(released)
            self._charged -= released
            if self.app is not None:
                self.app.tcp_data(piece)
        if self._eof_pending and self._reading and not self._rpending:
            self._eof_pending = False
            if self.app is not None:
                self.app.tcp_eof()
            self._maybe_report_time_wait()
        if self.state in RECEIVING or self.state == CLOSE_WAIT:
            edge_gain = seq_diff((self.rcv_nxt + self._rcv_window()) & MASK, self._rcv_adv)
            if edge_gain >= min(self.rcv_space // 2, 2 * self.smss):
                self._send_ack()
            elif self._ack_pushed and self._unacked_segs and self._reading:
                self._send_ack()                # the app drained a pushed segment: ACK it now

    # ---- timers ------------------------------------------------------------------------------

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
        self.rto.forget_timing()
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
        self.cc.timeout(self.snd_una, self.snd_max, self.smss, first=self._retries == 1)
        self.scoreboard.restart(self.snd_una)
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
        sndbuf = self.sndbuf
        if sndbuf.offset(self.snd_nxt) < len(sndbuf):
            self._send(self.snd_nxt, ACK, sndbuf.view(self.snd_nxt, 1))
            end = (self.snd_nxt + 1) & MASK
            if seq_gt(end, self.snd_max):
                self.snd_max = end
        self._persist_backoff = min(self._persist_backoff + 1, 9)
        self._start_persist()

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
        self.sndbuf.clear()
        self.ooo.clear()                                # (gives its bytes back to the budget)
        self.budget.release(self._charged)              # what is still pending is not counted
        self._charged = 0
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
        space = self.rcv_space
        avail = space - len(self._rpending)
        limit = 65535 << self.rcv_ws
        adv = seq_diff(self._rcv_adv, self.rcv_nxt)
        if self._rpending or not self._reading:
            # paused: only what the stack-wide budget has left (this may shrink the window)
            free = self.budget.free
            avail = min(avail, free)
            adv = min(adv, free)
        if avail < min(space // 2, self.smss):   # receiver SWS avoidance
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
        if self.ooo.segments and self.sack_ok:     # data segments were shortened to fit
            opts += self.ooo.sack_option(self.irs + 1, 3 if self.ts_ok else 4)
        self._emit(seq, self.rcv_nxt, flags, field, opts, payload)

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

    # ---- sending: segmentation, retransmission, ACKs ------------------------------------------

    def _deferred_output(self) -> None:
        self._output_call = None
        self._output()
        self._maybe_send_ack()

    def _output(self) -> None:
        """Send what the windows allow (RFC 9293 3.8.6.2.1 sender SWS avoidance, no Nagle)."""
        if self.state not in SENDING:
            return
        sndbuf = self.sndbuf
        sbuf, fin_queued = sndbuf.data, sndbuf.fin_queued
        smss = self._max_data()
        wnd = min(self.snd_wnd, self.cc.window(self.scoreboard.sacked_bytes))
        while True:
            nxt = self.snd_nxt
            off = seq_diff(nxt, sndbuf.seq)         # (re-read: an ACK may arrive inside _send)
            avail = len(sbuf) - off
            if avail < 0:
                break
            usable = wnd - seq_diff(nxt, self.snd_una)
            n = min(avail, smss, usable)
            fin = fin_queued and n == avail and usable >= n
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
            if not self.ts_ok and nxt == self.snd_max:
                self.rto.time_segment(nxt, self._clock.seconds())
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
                and seq_diff(self.snd_nxt, sndbuf.seq) < len(sbuf)):
            self._start_persist()

    def _retransmit_first(self) -> None:
        sndbuf = self.sndbuf
        una = self.snd_una
        avail = len(sndbuf) - sndbuf.offset(una)
        n = min(avail, self._max_data())
        fin = sndbuf.fin_queued and n == avail
        flags = ACK | (FIN if fin else 0) | (PSH if n and n == avail else 0)
        if n <= 0 and not fin:
            return
        self._send(una, flags, sndbuf.view(una, n) if n > 0 else b"")
        self.scoreboard.retransmitted((una + max(n, 0)) & MASK)

    def _max_data(self) -> int:
        """Payload per segment: SMSS less the room SACK blocks take while we hold a gap."""
        if self.ooo.segments and self.sack_ok:          # an upper bound of the option's size
            return self.smss - 4 - 8 * min(len(self.ooo.ranges), 3 if self.ts_ok else 4)
        return self.smss

    def _retransmit_hole(self) -> bool:
        """
        In SACK recovery, resend the next hole the scoreboard names (one segment per ACK that
        arrives, RFC 6675 style). Returns whether it sent.
        """
        una, sndbuf = self.snd_una, self.sndbuf
        hole = self.scoreboard.next_hole(una, self._max_data())
        if hole is None:
            return False
        seq, n = hole
        off = sndbuf.offset(seq)
        if off < 0 or off + n > len(sndbuf):
            return False
        self._send(seq, ACK, sndbuf.view(seq, n))
        self.scoreboard.retransmitted((seq + n) & MASK)
        return True

    def _process_ack(self, seg: Segment, seq: int) -> bool:
        ack = seg.ack
        una = self.snd_una
        self._probes = 0
        if seq_gt(ack, self.snd_max):
            self._send_ack()
            return False
        acked = seq_diff(ack, una)
        wnd = seg.window << self.snd_ws
        scoreboard, cc = self.scoreboard, self.cc
        sacked_more = bool(seg.sack) and scoreboard.update(una, self.snd_max, seg.sack)
        if acked >= 0 and (seq_lt(self._wl1, seq) or (self._wl1 == seq and seq_le(self._wl2, ack))):
            # a duplicate ACK: nothing new acknowledged, same window (RFC 5681 2) or, with
            # SACK, newly SACKed data (RFC 6675 2: Linux's window grows on every ACK)
            if (acked == 0 and not seg.payload and not seg.flags & FIN and una != self.snd_max
                    and wnd and (wnd == self.snd_wnd or sacked_more)):
                self._duplicate_ack()
            elif acked == 0:
                cc.other_ack()
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
        else:
            self.rto.acknowledged(ack, self._clock.seconds())
        self.rto.clear_back_off()
        self._retries = 0
        data_acked, fin_acked = self.sndbuf.acknowledge(ack)
        if data_acked and self.on_acked is not None:
            self.on_acked(self.sndbuf.acked)
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if scoreboard.ranges:
            scoreboard.update(ack, self.snd_max)        # drop what the ACK now covers
        if cc.new_ack(ack, acked, self.smss, bool(scoreboard.ranges),
                      seq_diff(self.snd_max, una)):
            # a partial ACK in recovery: resend the first hole even if SACK recovery resent it
            # already, so a lost retransmission costs one duplicate, not an RTO
            self._retransmit_first()
            self._arm_rto()
        if ack == self.snd_max:
            self._stop_rto()
        elif not cc.in_recovery:
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
        if self._writable_wanted and len(self.sndbuf) <= self.send_limit // 2:
            self._writable_wanted = False
            if self.app is not None:
                self.app.tcp_writable()
        return True

    def _duplicate_ack(self) -> None:
        action = self.cc.duplicate_ack(self.snd_una, self.snd_max, self.smss,
                                       bool(self.scoreboard.ranges))
        if action == ENTER_RECOVERY:
            self.rto.forget_timing()
            self.scoreboard.restart(self.snd_una)
            self._retransmit_first()
            self._arm_rto()
        elif action == RESEND_HOLE:
            self._retransmit_hole()

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
            self.state = ESTABLISHED if not self.sndbuf.fin_queued else FIN_WAIT_1
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
                self._receive(seq, payload, chunks, seg.tsecr)
                if chunks and flags & PSH:
                    self._ack_pushed = True
            if flags & FIN:
                fin_abs = self._rcv_abs + seq_diff(seq, self.rcv_nxt) + len(payload)
                self._fin_offset = fin_abs
                self._ack_now = True
            if self._fin_offset is not None and self._fin_offset == self._rcv_abs:
                fin_now = True
        app = self.app
        if chunks and app is not None:                  # data first, then EOF, then closed
            held = chunks
            if self._reading and not self._rpending:
                for i, c in enumerate(chunks):
                    app.tcp_data(c)
                    if self.state == CLOSED:
                        return
                    if not self._reading:       # the app paused: the rest waits for it
                        held = chunks[i + 1:]
                        break
                else:
                    held = []
            if held:
                for c in held:
                    self._rpending += c
                if self.state != CLOSED:
                    n = sum(map(len, held))
                    self._charged += n
                    self.budget.charge(n)
        if fin_now and self._fin_offset == self._rcv_abs:
            self._fin_offset = None
            self.ooo.clear()                            # nothing comes after the FIN
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

    def _receive(self, seq: int, payload: memoryview, chunks: list[bytes],
                 tsecr: int | None) -> None:
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
            # held only if the budget takes it, else dropped: neither ACKed nor SACKed, the
            # sender resends it; the duplicate ACK goes out at once either way
            if not self.ooo.insert(self._rcv_abs + d, payload):
                self.budget.drop(self.remote_key, n, (
                    f"out of order, over the {MAX_OOO_SEGMENTS} segments held" if self.ooo.full
                    else "out of order, over tcp_rcv_budget_bytes"))
            self._ack_now = True
            return
        if self._rpending or not self._reading:
            # the app is not reading: held until it does, if the budget takes it
            free = self.budget.free
            if n > free:
                self.budget.drop(self.remote_key, n - free,
                                 "over tcp_rcv_budget_bytes (the app is not reading)")
                payload = payload[:free]
                n = free
                if not n:
                    self._ack_now = True
                    return
        chunks.append(bytes(payload))
        if not self._unacked_segs:                      # (every other segment in bulk: cheap)
            now = self._clock.seconds()
            if now - self._last_data_time > self.rto.rto:
                self._quickacks = MAX_QUICKACKS         # the first data, or after an idle spell
            self._last_data_time = now
            if now - self._drs_time >= self._drs_rtt:
                self._adjust_rcv_space(now, tsecr)
        self._rcv_abs += n
        if self.ooo.segments:
            self._rcv_abs = self.ooo.drain(self._rcv_abs, chunks)
            self._ack_now = True
        self.rcv_nxt = (self.irs + 1 + self._rcv_abs) & MASK
        self._unacked_segs += 1

    def _adjust_rcv_space(self, now: float, tsecr: int | None) -> None:
        """
        Receive-buffer auto-tuning (Linux's dynamic right-sizing): once per receiver round
        trip, if the app took all data delivered so far, let the window grow to twice what
        arrives in a round trip at the rate seen (the bandwidth-delay product, and as much
        again so the sender can grow), up to C{rcv_buf_max}; it never shrinks. It starts at
        C{rcv_buf}, which covers the sender's slow start on common paths. The round trip is
        the lowest measured from the timestamps the sender echoes (RFC 7323 4.3), so a queue
        the window builds does not inflate it; without timestamps, the sender-side estimate
        or the RTO serves.
        """
        if self.ts_ok and tsecr:
            rtt = ((self._ts_now() - tsecr) & MASK) / 1000.0
        else:
            rtt = self.rto.srtt if self.rto.srtt is not None else self.rto.rto
        if self._drs_rtt and not self._rpending:
            # the bytes of one round trip at the rate seen since the last adjustment
            copied = (self._rcv_abs - self._drs_abs) * self._drs_rtt / (now - self._drs_time)
            if 2 * copied > self.rcv_space:
                self.rcv_space = min(int(2 * copied), self._rcv_space_max)
            # the lowest RTT seen: a queue the window itself builds must not grow it further
            rtt = min(rtt, self._drs_rtt)
        self._drs_time, self._drs_abs = now, self._rcv_abs
        self._drs_rtt = min(max(rtt, 0.001), 60.0)

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
