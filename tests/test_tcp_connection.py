# -*- test-case-name: tests.test_tcp_connection -*-
"""
RFC 9293 scenarios for the sans-IO L{axl.tcp.connection.Connection}: two machines joined by a
hand-driven wire, a L{Clock} for every timer.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    TCPTimedOutError,
)
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.tcp.connection import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    SYN_RCVD,
    SYN_SENT,
    MAX_QUICKACKS,
    TIME_WAIT,
    Connection,
    TCPConfig,
)
from axl.tcp.reassembly import OOO_SEGMENT_COST
from axl.tcp.rtt import RTOEstimator
from axl.tcp.segment import (
    ACK,
    FIN,
    RST,
    SYN,
    Segment,
    build_tcp,
    decode_segment,
    ts_option,
)

A_ADDR, B_ADDR = bytes(15) + b"\x01", bytes(15) + b"\x02"
COST = OOO_SEGMENT_COST


class App:
    """Records connection events."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.reason: Exception | None = None

    def tcp_established(self) -> None:
        self.events.append("established")

    def tcp_data(self, data: bytes) -> None:
        self.data += data

    def tcp_eof(self) -> None:
        self.events.append(f"eof after {len(self.data)}")

    def tcp_writable(self) -> None:
        self.events.append("writable")

    def tcp_closed(self, reason: Exception) -> None:
        self.events.append(f"closed after {len(self.data)}")
        self.reason = reason


class Wire:
    """
    Two connections; segments each one emits queue up (re-encoded and decoded, so they are real
    wire bytes) until L{deliver} hands them over. C{drop} filters segments out.
    """

    def __init__(self, cfg: TCPConfig | None = None, cfg_b: TCPConfig | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(10)
        self.queue: list[tuple[str, Segment]] = []
        self.log: list[tuple[str, Segment]] = []
        self.drop = lambda side, seg: False
        self.a = Connection(cfg or TCPConfig(), self.clock, self._emitter("a", 1000, 80), iss=1000,
                            release=self._released)
        self.b = Connection(cfg_b or cfg or TCPConfig(), self.clock, self._emitter("b", 80, 1000),
                            iss=5_000_000, release=self._released)
        self.a.app, self.b.app = App(), App()
        self.b.on_established = lambda c: c.app.tcp_established()
        self.released: list[Connection] = []

    def _released(self, conn: Connection) -> None:
        self.released.append(conn)

    def _emitter(self, side: str, sport: int, dport: int):
        src, dst = (A_ADDR, B_ADDR) if side == "a" else (B_ADDR, A_ADDR)

        def emit(seq, ack, flags, window, opts, payload):
            raw = build_tcp(src, dst, sport, dport, seq, ack, flags, window, opts, bytes(payload))
            seg = decode_segment(raw)
            self.log.append((side, seg))
            if not self.drop(side, seg):
                self.queue.append((side, seg))

        return emit

    def deliver(self, rounds: int = 10_000) -> None:
        """Deliver queued segments (and what they cause) until the wire is quiet."""
        for _ in range(rounds):
            if not self.queue:
                self.clock.advance(0)
                if not self.queue:
                    return
                continue
            side, seg = self.queue.pop(0)
            target = self.b if side == "a" else self.a
            if target.state == CLOSED and side == "a" and seg.flags & SYN and not seg.flags & ACK:
                target.open_passive(seg)
            else:
                target.segment_arrived(seg)

    def connect(self) -> None:
        self.a.open_active()
        self.deliver()

    def run(self, seconds: float, step: float = 0.01) -> None:
        """Let simulated time pass, delivering as we go."""
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end:
            self.clock.advance(step)
            self.deliver()

    def sent(self, side: str, flag: int | None = None) -> list[Segment]:
        return [s for d, s in self.log if d == side and (flag is None or s.flags & flag)]


class HandshakeTests(SynchronousTestCase):
    """Opening connections (RFC 9293 3.5)."""

    def test_three_way(self) -> None:
        """SYN, SYN-ACK, ACK: both ESTABLISHED, options negotiated, no timers left running."""
        w = Wire()
        w.connect()
        self.assertEqual((w.a.state, w.b.state), (ESTABLISHED, ESTABLISHED))
        self.assertEqual(w.a.app.events, ["established"])
        self.assertEqual(w.b.app.events, ["established"])
        syn, synack = w.sent("a")[0], w.sent("b")[0]
        self.assertEqual((syn.flags, synack.flags), (SYN, SYN | ACK))
        self.assertEqual(synack.ack, 1001)
        self.assertEqual(syn.mss, 65475)
        self.assertTrue(w.a.ts_ok and w.b.ts_ok)
        self.assertEqual(w.a.snd_ws, w.b.rcv_ws)
        self.assertEqual(w.a.smss, 65475 - 12)
        w.clock.advance(100)
        self.assertEqual(w.clock.getDelayedCalls(), [])

    def test_bare_syn_gets_bare_syn_ack(self) -> None:
        """
        A SYN without options gets a SYN-ACK with only our MSS (no window scale, timestamps
        or SACK-permitted), and we then send at most 1220 bytes (RFC 9293 3.7.1 for IPv6).
        """
        w = Wire()
        syn = decode_segment(build_tcp(A_ADDR, B_ADDR, 1000, 80, 1, 0, SYN, 8192))
        w.b.open_passive(syn)
        (_, synack), = w.queue
        self.assertEqual([name for name, _ in synack.options], ["mss"])
        self.assertEqual((w.b.smss, w.b.snd_wnd, w.b.ts_ok, w.b.sack_ok), (1220, 8192, False, False))
        self.assertEqual(synack.window, 65535)

    def test_syn_retransmitted_with_backoff(self) -> None:
        """A lost SYN is sent again after 1 s, then 2 s, then 4 s (RFC 6298 back-off)."""
        w = Wire()
        w.drop = lambda side, seg: side == "a"
        w.a.open_active()
        times = []
        for _ in range(800):
            n = len(w.sent("a"))
            w.clock.advance(0.01)
            if len(w.sent("a")) > n:
                times.append(round(w.clock.seconds() - 10, 1))
        self.assertEqual(times[:3], [1.0, 3.0, 7.0])

    def test_syn_gives_up(self) -> None:
        """After syn_retries unanswered SYNs the connection fails with TCPTimedOutError."""
        w = Wire(TCPConfig(syn_retries=2))
        w.drop = lambda side, seg: True
        w.a.open_active()
        for _ in range(100):
            w.clock.advance(1)
        self.assertEqual(w.a.state, CLOSED)
        self.assertIsInstance(w.a.app.reason, TCPTimedOutError)
        self.assertEqual(len(w.sent("a", SYN)), 3)
        self.assertEqual(w.clock.getDelayedCalls(), [])

    def test_simultaneous_open(self) -> None:
        """Two SYNs cross: both go SYN_SENT -> SYN_RECEIVED -> ESTABLISHED (RFC 9293 fig. 8)."""
        w = Wire()
        w.a.open_active()
        w.b.open_active()
        self.assertEqual((w.a.state, w.b.state), (SYN_SENT, SYN_SENT))
        queued = list(w.queue)
        w.queue.clear()
        w.a.segment_arrived(queued[1][1])
        w.b.segment_arrived(queued[0][1])
        self.assertEqual((w.a.state, w.b.state), (SYN_RCVD, SYN_RCVD))
        w.deliver()
        self.assertEqual((w.a.state, w.b.state), (ESTABLISHED, ESTABLISHED))
        w.a.send(b"ping")
        w.deliver()
        self.assertEqual(bytes(w.b.app.data), b"ping")

    def test_rst_to_syn_is_refused(self) -> None:
        """An RST acking our SYN fails the connect with ConnectionRefusedError."""
        w = Wire()
        w.a.open_active()
        (_, syn), = w.queue
        w.queue.clear()
        rst = decode_segment(build_tcp(B_ADDR, A_ADDR, 80, 1000, 0, syn.seq + 1, RST | ACK, 0))
        w.a.segment_arrived(rst)
        self.assertEqual(w.a.state, CLOSED)
        self.assertIsInstance(w.a.app.reason, ConnectionRefusedError)
        self.assertEqual(w.released, [w.a])

    def test_bad_ack_in_syn_sent_gets_rst(self) -> None:
        """A SYN-ACK acking something we never sent is answered with RST <SEQ=SEG.ACK>."""
        w = Wire()
        w.a.open_active()
        w.queue.clear()
        bogus = decode_segment(build_tcp(B_ADDR, A_ADDR, 80, 1000, 7, 99, SYN | ACK, 100))
        w.a.segment_arrived(bogus)
        last = w.sent("a")[-1]
        self.assertEqual((last.flags, last.seq), (RST, 99))
        self.assertEqual(w.a.state, SYN_SENT)


class DataTests(SynchronousTestCase):
    """Sending, acknowledging, retransmitting."""

    def test_small_segment_acked_at_once(self) -> None:
        """
        A lone small write (PSH, taken by the app at once) is ACKed immediately, not after the
        delayed-ACK timer (tests.test_tcp_quickack has the cases that still wait 40 ms).
        """
        w = Wire()
        w.connect()
        w.a.send(b"x" * 10)
        w.deliver()
        self.assertEqual(bytes(w.b.app.data), b"x" * 10)
        self.assertEqual(w.sent("b")[-1].ack, 1011)
        self.assertEqual(w.a.snd_una, 1011)
        self.assertEqual(w.clock.seconds(), 10)

    def test_every_second_segment_acked(self) -> None:
        """
        Past the start-up quick-ACK segments, bulk data draws an immediate ACK for every second
        segment (RFC 5681 4.2).
        """
        w = Wire(TCPConfig(mtu=1280))
        w.connect()
        for _ in range(MAX_QUICKACKS):
            w.a.send(b"x")
            w.deliver()
        start = len(w.log)
        w.a.send(bytes(w.a.smss * 4))
        w.deliver()
        acks = [s for d, s in w.log[start:] if d == "b" and s.flags == ACK]
        self.assertEqual(len(acks), 2)

    def test_never_exceeds_peer_mss(self) -> None:
        """With a peer MSS of 1220 (gVisor), no segment carries more than 1208 bytes."""
        w = Wire(TCPConfig(), TCPConfig(mtu=1280))
        w.connect()
        w.a.send(bytes(100_000))
        w.deliver()
        self.assertEqual(max(len(s.payload) for s in w.sent("a")), 1208)
        self.assertEqual(len(w.b.app.data), 100_000)

    def test_packet_too_big_lowers_mss(self) -> None:
        """An ICMPv6 PTB of 1280 shrinks segments to 1280 - 60 - 12 bytes (RFC 8201)."""
        w = Wire()
        w.connect()
        w.a.lower_mtu(1280)
        w.a.send(bytes(10_000))
        w.deliver()
        self.assertEqual(max(len(s.payload) for s in w.sent("a")), 1208)
        w.a.lower_mtu(500)
        self.assertEqual(w.a.smss, 1208)          # never below the IPv6 minimum MTU

    def test_retransmission_timeout(self) -> None:
        """A lost segment is resent after the RTO; the receiver gets the data exactly once."""
        w = Wire()
        w.connect()
        first = [True]

        def drop(side, seg):
            if side == "a" and seg.payload and first[0]:
                first[0] = False
                return True
            return False

        w.drop = drop
        w.a.send(b"hello")
        w.deliver()
        self.assertEqual(bytes(w.b.app.data), b"")
        w.run(1.5)
        self.assertEqual(bytes(w.b.app.data), b"hello")
        self.assertEqual(len([s for s in w.sent("a") if s.payload]), 2)

    def lose_two(self, sack: bool) -> Wire:
        w = Wire(TCPConfig(mtu=1280))
        w.connect()
        if not sack:
            w.a.sack_ok = w.b.sack_ok = False
        w.a.cc.cwnd = 40 * w.a.smss
        smss = w.a.smss
        lost = {w.a.snd_nxt + 3 * smss, w.a.snd_nxt + 7 * smss}
        w.drop = lambda side, seg: side == "a" and seg.seq in lost and not lost.discard(seg.seq)
        w.a.send(bytes(30 * smss))
        w.deliver()
        self.assertEqual(len(w.b.app.data), 30 * smss)
        self.assertEqual(w.clock.seconds(), 10)           # no time passed: no RTO involved
        self.assertLess(w.a.cc.ssthresh, 40 * smss)
        return w

    def test_fast_retransmit_newreno(self) -> None:
        """
        Without SACK, losing two segments of a window triggers fast retransmit on the third
        duplicate ACK, halves ssthresh and retransmits the second hole on the partial ACK (RFC
        6582): exactly two retransmissions, no RTO.
        """
        w = self.lose_two(sack=False)
        self.assertEqual(len([s for s in w.sent("a") if s.payload]), 32)

    def test_fast_retransmit_sack(self) -> None:
        """
        With SACK (negotiated by default), the second hole is resent on a duplicate ACK that
        SACKs past it, before the partial ACK; no RTO, at most one spurious retransmission.
        """
        w = self.lose_two(sack=True)
        self.assertTrue(w.a.sack_ok and w.b.sack_ok)
        self.assertIn(len([s for s in w.sent("a") if s.payload]), (32, 33))

    def test_sack_blocks_on_dupacks(self) -> None:
        """
        With a peer that permits SACK, our duplicate ACKs carry SACK blocks for the data held
        out of order (growing as more arrives), and the final cumulative ACK carries none.
        """
        w = Wire(TCPConfig(mtu=1280))
        w.connect()
        w.a.sack_ok = True
        smss = w.b.smss
        hole = w.b.snd_nxt + smss
        dropped: list[int] = []
        w.drop = lambda side, seg: side == "b" and seg.seq == hole and not dropped and not dropped.append(1)
        w.b.send(bytes(6 * smss))
        w.deliver()
        sacks = [v for d, s in w.log if d == "a" for k, v in s.options if k == "sack"]
        base = hole + smss
        self.assertEqual(sacks[0], [(base, base + smss)])
        self.assertEqual(sacks[2], [(base, base + 3 * smss)])
        self.assertEqual(len(w.a.app.data), 6 * smss)
        self.assertFalse([k for k, _ in w.sent("a")[-1].options if k == "sack"])

    def test_limited_transmit(self) -> None:
        """The first two duplicate ACKs each release one new segment (RFC 3042)."""
        w = Wire(TCPConfig(mtu=1280))
        w.connect()
        smss = w.a.smss
        w.a.cc.cwnd = 4 * smss
        hole = w.a.snd_nxt
        dropped: list[int] = []
        w.drop = lambda side, seg: side == "a" and seg.seq == hole and not dropped and not dropped.append(1)
        w.a.send(bytes(10 * smss))
        w.deliver()
        self.assertEqual(len(w.b.app.data), 10 * smss)
        self.assertEqual(w.clock.seconds(), 10)         # recovered without an RTO

    def test_old_duplicate_is_acked_not_redelivered(self) -> None:
        """A duplicate of already-received data draws an ACK and is not delivered twice."""
        w = Wire()
        w.connect()
        w.a.send(b"abc")
        w.deliver()
        data_seg = [s for s in w.sent("a") if s.payload][0]
        n = len(w.sent("b"))
        w.b.segment_arrived(data_seg)
        self.assertEqual(bytes(w.b.app.data), b"abc")
        self.assertEqual(w.sent("b")[n].flags, ACK)

    def test_out_of_order_reassembly(self) -> None:
        """Segments delivered in reverse order are reassembled in order."""
        w = Wire(TCPConfig(mtu=1280))
        w.connect()
        payload = bytes(range(256)) * 20
        w.a.send(payload)
        w.clock.advance(0)
        w.queue.reverse()
        w.deliver()
        self.assertEqual(bytes(w.b.app.data), payload)

    def test_paws_drops_old_timestamp(self) -> None:
        """A segment whose TSval is older than TS.Recent is dropped with an ACK (RFC 7323 5)."""
        w = Wire()
        w.connect()
        w.clock.advance(1)
        w.a.send(b"new")
        w.deliver()
        old = decode_segment(build_tcp(A_ADDR, B_ADDR, 1000, 80, w.a.snd_nxt, w.a.rcv_nxt, ACK,
                                       100, b"\x01\x01\x08\x0a" + (1).to_bytes(4, "big") + bytes(4),
                                       b"old"))
        w.b.segment_arrived(old)
        self.assertEqual(bytes(w.b.app.data), b"new")


class ReassemblyPropertyTests(SynchronousTestCase):
    """Arbitrary segmentations, orders and duplicates of a byte stream reassemble exactly."""

    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def test_any_order_any_overlap(self, data) -> None:
        """
        Segments with arbitrary (overlapping) boundaries, delivered shuffled and duplicated,
        give the application exactly the original stream, in order, once.
        """
        payload = bytes(range(256)) * 12
        n = len(payload)
        cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=12))))
        bounds = list(zip([0, *cuts], [*cuts, n]))
        extra = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 900)), max_size=6))
        pieces = bounds + [(a, min(n, a + k)) for a, k in extra]
        pieces += data.draw(st.lists(st.sampled_from(pieces), max_size=4))
        order = data.draw(st.permutations(pieces))
        w = Wire()
        w.connect()
        base, ack = w.b.snd_nxt, w.b.rcv_nxt
        ts = ts_option(w.b._ts_now(), w.b._ts_recent)
        for start, end in order:
            raw = build_tcp(B_ADDR, A_ADDR, 80, 1000, (base + start) % 2**32, ack, ACK, 65535, ts,
                            payload[start:end])
            w.a.segment_arrived(decode_segment(raw))
            merged: list[list[int]] = []
            for key in sorted(w.a.ooo.segments):
                end = key + len(w.a.ooo.segments[key])
                if merged and key <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([key, end])
            self.assertEqual(w.a.ooo.ranges, merged)       # the SACK ranges mirror the data
            held = sum(len(seg) + OOO_SEGMENT_COST for seg in w.a.ooo.segments.values())
            self.assertEqual((w.a.budget.used, w.a.ooo.held), (held, held))  # all charged
        self.assertEqual(bytes(w.a.app.data), payload)
        self.assertEqual((w.a.ooo.segments, w.a.ooo.ranges), ({}, []))
        self.assertEqual(w.a.budget.used, 0)


class OutOfOrderLimitTests(SynchronousTestCase):
    """A peer cannot make us hold unbounded numbers of tiny out-of-order segments."""

    def test_ooo_segment_cap(self) -> None:
        """Beyond MAX_OOO_SEGMENTS held segments, new out-of-order ones are dropped (and ACKed)."""
        from axl.tcp.reassembly import MAX_OOO_SEGMENTS

        w = Wire()
        w.connect()
        base, ack = w.b.snd_nxt, w.b.rcv_nxt
        ts = ts_option(w.b._ts_now(), w.b._ts_recent)
        for i in range(MAX_OOO_SEGMENTS + 50):
            raw = build_tcp(B_ADDR, A_ADDR, 80, 1000, (base + 2 + 2 * i) % 2**32, ack, ACK, 65535,
                            ts, b"x")
            w.a.segment_arrived(decode_segment(raw))
        self.assertEqual(len(w.a.ooo.segments), MAX_OOO_SEGMENTS)
        self.assertEqual(bytes(w.a.app.data), b"")


class OutOfOrderBudgetTests(SynchronousTestCase):
    """
    Out-of-order data is charged to the receive budget (C{tcp_rcv_budget_bytes}): what it
    cannot take is dropped, neither acknowledged nor SACKed, and taken when resent.
    """

    payload = bytes(range(256)) * 20

    def wire(self, budget: int) -> Wire:
        w = Wire(TCPConfig(rcv_budget=budget))
        w.connect()
        self.drops: list[tuple[int, str]] = []
        w.a.budget.on_drop = lambda key, n, why: self.drops.append((n, why))
        return w

    def inject(self, w: Wire, start: int, end: int, flags: int = ACK) -> Segment | None:
        """B's bytes [start, end) arrive at A (by hand); returns A's answer (an ACK)."""
        ts = ts_option(w.b._ts_now(), w.b._ts_recent)
        raw = build_tcp(B_ADDR, A_ADDR, 80, 1000, (w.b.snd_nxt + start) % 2**32, w.b.rcv_nxt,
                        flags, 65535, ts, self.payload[start:end])
        n = len(w.log)
        w.a.segment_arrived(decode_segment(raw))
        answers = [seg for side, seg in w.log[n:] if side == "a"]
        self.assertEqual(len(answers), 0 if flags & RST else 1)
        return answers[-1] if answers else None

    def offsets(self, w: Wire, ack: Segment | None) -> tuple[int, list[tuple[int, int]]]:
        """A's ACK as stream offsets: (acknowledged up to, SACK blocks)."""
        assert ack is not None
        base = w.a.irs + 1
        return (ack.ack - base) % 2**32, [((lo - base) % 2**32, (hi - base) % 2**32)
                                          for lo, hi in ack.sack]

    def test_over_budget_neither_acked_nor_sacked_then_taken(self) -> None:
        """
        With 2500 bytes of budget (and two segments' cost), 2000 out-of-order bytes are held
        and SACKed; the next 1000
        are dropped (counted, reported) and no ACK or SACK block covers them; once the gap
        fills, all held data is delivered and the budget is free; the dropped segment, resent,
        is taken.
        """
        w = self.wire(2500 + 2 * COST)
        self.assertEqual(self.offsets(w, self.inject(w, 1000, 2000)), (0, [(1000, 2000)]))
        self.assertEqual(self.offsets(w, self.inject(w, 2000, 3000)), (0, [(1000, 3000)]))
        self.assertEqual(w.a.budget.used, 2000 + 2 * COST)
        self.assertEqual(self.offsets(w, self.inject(w, 3000, 4000)), (0, [(1000, 3000)]))
        self.assertEqual((w.a.budget.used, w.a.budget.dropped), (2000 + 2 * COST, 1000))
        self.assertEqual(self.drops, [(1000, "out of order, over tcp_rcv_budget_bytes")])
        self.assertEqual(w.a.ooo.ranges, [[1000, 3000]])
        # the gap (1000 bytes, more than the 500 left): in order for a reading app, so taken
        self.assertEqual(self.offsets(w, self.inject(w, 0, 1000)), (3000, []))
        self.assertEqual((bytes(w.a.app.data), w.a.budget.used), (self.payload[:3000], 0))
        self.assertEqual(self.offsets(w, self.inject(w, 3000, 4000)), (4000, []))
        self.assertEqual(bytes(w.a.app.data), self.payload[:4000])
        self.assertEqual(w.a.budget.used, 0)

    def test_paused_and_out_of_order_share_the_budget(self) -> None:
        """
        A paused app's in-order data, out-of-order data and other connections' data count
        together: an out-of-order segment inside the window but over what the budget has left
        is dropped; data filling the gap moves out-of-order bytes to the paused side without
        counting them twice.
        """
        w = self.wire(6144 + COST)
        w.a.pause_reading()
        self.inject(w, 0, 1024)                                 # held for the paused app
        self.inject(w, 2048, 3072)                              # held out of order
        self.assertEqual(w.a.budget.used, 2048 + COST)
        w.a.budget.charge(3072)                                 # another connection's data
        self.assertEqual(self.offsets(w, self.inject(w, 3072, 5120)), (1024, [(2048, 3072)]))
        self.assertEqual(w.a.budget.dropped, 2048)
        w.a.budget.release(3072)
        self.assertEqual(self.offsets(w, self.inject(w, 1024, 2048)), (3072, []))
        self.assertEqual((w.a.budget.used, len(w.a._rpending), w.a.ooo.held), (3072, 3072, 0))
        self.assertEqual(bytes(w.a.app.data), b"")
        w.a.resume_reading()
        self.assertEqual((bytes(w.a.app.data), w.a.budget.used), (self.payload[:3072], 0))

    def test_fin_gives_back_data_above_it(self) -> None:
        """Out-of-order data above the peer's FIN can never be delivered: it is released."""
        w = self.wire(10_000)
        self.inject(w, 2000, 3000)
        self.assertEqual(w.a.budget.used, 1000 + COST)
        self.inject(w, 0, 1000, ACK | FIN)
        self.assertEqual((w.a.state, w.a.app.events[-1]), (CLOSE_WAIT, "eof after 1000"))
        self.assertEqual((w.a.budget.used, w.a.ooo.segments), (0, {}))

    def test_closing_gives_back(self) -> None:
        """Abort, a reset from the peer and a retransmission timeout all return the charge."""
        for end in ("abort", "rst", "timeout"):
            w = self.wire(10_000)
            self.inject(w, 2000, 3000)
            self.assertEqual(w.a.budget.used, 1000 + COST)
            if end == "abort":
                w.a.abort()
            elif end == "rst":
                self.inject(w, 0, 0, RST)
            else:
                w.drop = lambda side, seg: True
                w.a.send(b"never acknowledged")
                w.run(3600, step=1)
            self.assertEqual((w.a.state, w.a.budget.used), (CLOSED, 0), end)


class FlowControlTests(SynchronousTestCase):
    """Receive window, zero window, persist probes."""

    def test_zero_window_and_probes(self) -> None:
        """
        A receiver that stops reading closes its window; the sender stops, probes the zero
        window with 1-byte segments at growing intervals, and resumes when reading does.
        """
        cfg = TCPConfig(rcv_buf=64 * 1024)
        w = Wire(cfg)
        w.connect()
        w.b.pause_reading()
        data = bytes(range(256)) * 1024                 # 256 KiB
        w.a.send(data)
        w.run(1)
        self.assertEqual(w.a.snd_wnd, 0)
        self.assertLessEqual(len(w.b._rpending), 64 * 1024 + w.a.smss)
        n = len(w.sent("a"))
        w.run(10, step=0.05)
        probes = [s for s in w.sent("a")[n:] if len(s.payload) == 1]
        self.assertGreaterEqual(len(probes), 3)
        self.assertTrue(w.clock.getDelayedCalls())
        w.b.resume_reading()
        w.run(30, step=0.05)
        self.assertEqual(bytes(w.b.app.data), data)

    def test_an_app_that_pauses_gets_no_more(self) -> None:
        """
        An app that pauses inside C{tcp_data} is handed nothing more until it resumes (the rest
        of what arrived is held, and charged to the budget); a resume hands over what was held
        in pieces of at most DELIVERY_PIECE, stopping as soon as the app pauses again.
        """
        from axl.tcp.connection import DELIVERY_PIECE

        w = Wire(TCPConfig(rcv_buf=1 << 20))
        w.connect()
        b = w.b
        calls: list[int] = []

        class PausingApp(App):
            def tcp_data(self, data: bytes) -> None:
                super().tcp_data(data)
                calls.append(len(data))
                b.pause_reading()

        b.app = PausingApp()
        data = bytes(range(256)) * 1024  # 256 KiB
        w.a.send(data)
        w.run(1)
        self.assertEqual(len(calls), 1)  # paused by the first piece: the rest is held
        held = len(b._rpending)
        self.assertEqual(calls[0] + held, len(data))
        self.assertEqual(b.budget.used, held)
        for expected in range(2, 10):
            if not b._rpending:
                break
            b.resume_reading()
            self.assertEqual(len(calls), expected)  # one piece per resume
            self.assertLessEqual(calls[-1], DELIVERY_PIECE)
        w.run(5)
        while b._rpending or not b._reading:
            b.resume_reading()
            w.run(1)
        self.assertEqual(bytes(b.app.data), data)
        self.assertEqual(b.budget.used, 0)

    def test_probing_a_vanished_peer_gives_up(self) -> None:
        """Zero-window probes that draw no ACK at all end the connection after max_retries."""
        w = Wire(TCPConfig(rcv_buf=64 * 1024, max_retries=4))
        w.connect()
        w.b.pause_reading()
        w.a.send(bytes(200_000))
        w.run(1)
        self.assertEqual(w.a.snd_wnd, 0)
        w.drop = lambda side, seg: True
        for _ in range(2000):
            w.run(1, step=0.5)
            if w.a.state == CLOSED:
                break
        self.assertIsInstance(w.a.app.reason, TCPTimedOutError)
        self.assertEqual(w.released[0], w.a)

    def test_window_scaling(self) -> None:
        """
        The scale we offer covers the largest window auto-tuning may reach (rcv_buf_max); the
        window field is the current window shifted right by it once established.
        """
        w = Wire()
        w.connect()
        w.a.send(b"x")
        w.deliver()
        seg = w.sent("a")[-1]
        self.assertEqual(w.a.rcv_ws, 8)                        # 16 MiB needs 24 bits
        self.assertEqual(seg.window, (4 << 20) >> 8)           # rcv_buf, 4 MiB, to start


class CloseTests(SynchronousTestCase):
    """FIN, half-close, TIME_WAIT, RST."""

    def test_orderly_close_and_half_close(self) -> None:
        """
        A closes: FIN_WAIT_1 -> FIN_WAIT_2, B in CLOSE_WAIT can still send; B closes: LAST_ACK ->
        CLOSED, A: TIME_WAIT -> CLOSED after 2 MSL; both report a clean close; no timers left.
        """
        w = Wire()
        w.connect()
        w.a.send(b"request")
        w.a.close()
        self.assertEqual(w.a.state, FIN_WAIT_1)
        w.deliver()
        self.assertEqual((w.a.state, w.b.state), (FIN_WAIT_2, CLOSE_WAIT))
        self.assertEqual(w.b.app.events, ["established", "eof after 7"])
        w.b.send(b"response")
        w.b.close()
        self.assertEqual(w.b.state, LAST_ACK)
        w.deliver()
        self.assertEqual(bytes(w.a.app.data), b"response")
        self.assertEqual((w.a.state, w.b.state), (TIME_WAIT, CLOSED))
        self.assertIsInstance(w.b.app.reason, ConnectionDone)
        self.assertIsInstance(w.a.app.reason, ConnectionDone)
        w.clock.advance(60)
        self.assertEqual(w.a.state, CLOSED)
        self.assertEqual(w.released, [w.b, w.a])
        self.assertEqual(w.clock.getDelayedCalls(), [])

    def test_data_and_eof_before_closed(self) -> None:
        """
        In FIN_WAIT_2, when a retransmission fills the hole before queued out-of-order data and
        the peer's FIN, the app gets all the data, then EOF, then 'closed' (TIME_WAIT).
        """
        w = Wire(TCPConfig(mtu=1280))
        w.connect()
        w.a.close()
        w.deliver()
        self.assertEqual(w.a.state, FIN_WAIT_2)
        lost = []
        w.drop = lambda side, seg: side == "b" and bool(seg.payload) and not lost and not lost.append(seg)
        w.b.send(bytes(10_000))
        w.b.close()
        w.deliver()                                     # the hole is filled by fast retransmit
        self.assertEqual(len(lost), 1)
        self.assertEqual(w.a.state, TIME_WAIT)
        self.assertEqual(w.a.app.events, ["established", "eof after 10000", "closed after 10000"])

    def test_simultaneous_close(self) -> None:
        """Both close at once: FIN_WAIT_1 -> CLOSING -> TIME_WAIT on both sides."""
        w = Wire()
        w.connect()
        w.a.close()
        w.b.close()
        queued = list(w.queue)
        w.queue.clear()
        w.b.segment_arrived(queued[0][1])
        w.a.segment_arrived(queued[1][1])
        self.assertEqual((w.a.state, w.b.state), (CLOSING, CLOSING))
        w.deliver()
        self.assertEqual((w.a.state, w.b.state), (TIME_WAIT, TIME_WAIT))

    def test_lost_fin_retransmitted(self) -> None:
        """A lost FIN is retransmitted by the RTO."""
        w = Wire()
        w.connect()
        dropped = []
        w.drop = lambda side, seg: bool(seg.flags & FIN) and not dropped and not dropped.append(1)
        w.a.close()
        w.deliver()
        self.assertEqual(w.b.state, ESTABLISHED)
        w.run(2)
        self.assertEqual((w.a.state, w.b.state), (FIN_WAIT_2, CLOSE_WAIT))

    def test_abort_resets_peer(self) -> None:
        """abort() sends RST; the peer reports the connection lost (reset by peer)."""
        w = Wire()
        w.connect()
        w.a.abort()
        w.deliver()
        self.assertEqual((w.a.state, w.b.state), (CLOSED, CLOSED))
        self.assertIsInstance(w.b.app.reason, ConnectionLost)
        self.assertEqual(w.clock.getDelayedCalls(), [])

    def test_blind_rst_gets_challenge_ack(self) -> None:
        """An in-window RST whose seq is not exactly RCV.NXT draws a challenge ACK (RFC 5961)."""
        w = Wire()
        w.connect()
        rst = decode_segment(build_tcp(B_ADDR, A_ADDR, 80, 1000, w.a.rcv_nxt + 5, 0, RST, 0))
        n = len(w.sent("a"))
        w.a.segment_arrived(rst)
        self.assertEqual(w.a.state, ESTABLISHED)
        self.assertEqual(w.sent("a")[n].flags, ACK)

    def test_peer_vanishes(self) -> None:
        """
        When the peer stops answering, data is retransmitted with doubling timeouts and the
        connection fails with TCPTimedOutError after max_retries; no timers are left.
        """
        w = Wire(TCPConfig(max_retries=5, min_rto=0.2))
        w.connect()
        w.drop = lambda side, seg: True
        w.a.send(b"anyone?")
        w.clock.advance(0)
        times = []
        for _ in range(20000):
            n = len(w.sent("a"))
            w.clock.advance(0.01)
            if len(w.sent("a")) > n:
                times.append(w.clock.seconds())
            if w.a.state == CLOSED:
                break
        gaps = [round(b - a, 1) for a, b in zip(times, times[1:-1])]
        self.assertEqual(gaps, [2.0, 4.0, 8.0, 16.0])         # initial RTO 1 s, no RTT sample
        self.assertIsInstance(w.a.app.reason, TCPTimedOutError)
        self.assertEqual(w.sent("a")[-1].flags & RST, RST)
        self.assertEqual(w.clock.getDelayedCalls(), [])

    def test_send_after_close_rejected(self) -> None:
        """Sending after close() is a programming error."""
        w = Wire()
        w.connect()
        w.a.close()
        self.assertRaises(RuntimeError, w.a.send, b"late")


class RTOTests(SynchronousTestCase):
    """The RFC 6298 estimator."""

    def test_first_and_later_samples(self) -> None:
        """First sample: SRTT=R, RTTVAR=R/2; RTO clamps to [min, max]; back-off doubles."""
        e = RTOEstimator(initial=1.0, min_rto=0.2, max_rto=60)
        self.assertEqual(e.rto, 1.0)
        e.sample(0.5)
        self.assertEqual((e.srtt, e.rttvar, e.rto), (0.5, 0.25, 1.5))
        e.sample(0.5)
        self.assertAlmostEqual(e.rttvar, 0.1875)
        e.back_off()
        self.assertAlmostEqual(e.rto, 2 * (0.5 + 4 * 0.1875))
        for _ in range(10):
            e.back_off()
        self.assertEqual(e.rto, 60)
        e.clear_back_off()
        self.assertAlmostEqual(e.rto, 0.5 + 4 * 0.1875)
        e.sample(0.0001)
        self.assertGreaterEqual(e.rto, 0.2)
