"""
Tests for the collaborators a L{axl.tcp.connection.Connection} owns, each on its own: the send
buffer, the SACK scoreboard, NewReno congestion control, the RTT timing of L{RTOEstimator} and
the receiver's out-of-order queue. Sequence numbers near 2**32 check wrap-around.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from axl.tcp.common import RcvBudget
from axl.tcp.congestion import ENTER_RECOVERY, NO_ACTION, RESEND_HOLE, NewReno
from axl.tcp.reassembly import MAX_OOO_SEGMENTS, OOO_SEGMENT_COST, OutOfOrderQueue
from axl.tcp.rtt import RTOEstimator
from axl.tcp.sack import MAX_SACK_RANGES, SackScoreboard
from axl.tcp.sendbuf import SendBuffer
from axl.tcp.seq import MASK

NEAR_WRAP = MASK - 99            # 100 sequence numbers below the wrap
SMSS = 1000


class SendBufferTests(SynchronousTestCase):
    """L{SendBuffer}."""

    def test_append_view_acknowledge(self) -> None:
        """Data is viewed by sequence number, and ACKs trim the front across the wrap."""
        b = SendBuffer(NEAR_WRAP)
        b.append(b"a" * 150)
        b.append(memoryview(b"b" * 50))
        self.assertEqual((len(b), b.written, b.acked), (200, 200, 0))
        self.assertEqual(bytes(b.view((NEAR_WRAP + 148) & MASK, 4)), b"aabb")
        self.assertEqual(b.offset((NEAR_WRAP + 120) & MASK), 120)
        self.assertEqual(b.acknowledge((NEAR_WRAP + 120) & MASK), (120, False))
        self.assertEqual((len(b), b.seq, b.acked), (80, 20, 120))
        self.assertEqual(bytes(b.view(20, 3)), b"aaa")
        self.assertEqual(b.acknowledge(10), (0, False))          # old ACK: nothing
        self.assertEqual(len(b), 80)

    def test_fin(self) -> None:
        """An ACK one past the data acknowledges the FIN; nothing may be appended after it."""
        b = SendBuffer(10)
        b.append(b"xyz")
        b.fin_queued = True
        self.assertRaises(RuntimeError, b.append, b"late")
        self.assertEqual(b.acknowledge(13), (3, False))
        self.assertEqual(b.acknowledge(14), (0, True))
        self.assertEqual((len(b), b.acked, b.written), (0, 3, 3))

    def test_fin_with_data(self) -> None:
        """One ACK covering data and FIN reports both."""
        b = SendBuffer(0)
        b.append(b"abcd")
        b.fin_queued = True
        self.assertEqual(b.acknowledge(5), (4, True))


class SackScoreboardTests(SynchronousTestCase):
    """L{SackScoreboard}."""

    def test_merge_and_count(self) -> None:
        """Blocks merge into disjoint ranges; the return says whether coverage grew."""
        una = NEAR_WRAP
        top = (una + 10 * SMSS) & MASK
        s = SackScoreboard(una)
        r = lambda a, b: ((una + a) & MASK, (una + b) & MASK)  # noqa: E731
        self.assertTrue(s.update(una, top, [r(2000, 3000)]))
        self.assertTrue(s.update(una, top, [r(4000, 5000), r(2500, 3500)]))
        self.assertEqual(s.ranges, [r(2000, 3500), r(4000, 5000)])
        self.assertEqual(s.sacked_bytes, 2500)
        self.assertFalse(s.update(una, top, [r(2000, 3000)]))     # nothing new
        # an ACK up to 3000 drops what it covers
        s.update((una + 3000) & MASK, top)
        self.assertEqual(s.ranges, [r(3000, 3500), r(4000, 5000)])
        self.assertEqual(s.sacked_bytes, 1500)

    def test_ignores_dsack_and_nonsense(self) -> None:
        """Blocks at or below SND.UNA, above SND.MAX or inverted are ignored."""
        s = SackScoreboard(1000)
        self.assertFalse(s.update(1000, 5000, [(500, 1000), (1000, 2000), (4000, 6000),
                                               (3000, 2000)]))
        self.assertEqual((s.ranges, s.sacked_bytes), ([], 0))

    def test_bounded(self) -> None:
        """At most MAX_SACK_RANGES ranges are kept, the highest ones."""
        s = SackScoreboard(0)
        blocks = [(i * 200 + 100, i * 200 + 150) for i in range(MAX_SACK_RANGES + 10)]
        s.update(0, 1 << 20, blocks)
        self.assertEqual(len(s.ranges), MAX_SACK_RANGES)
        self.assertEqual(s.ranges[-1], blocks[-1])
        self.assertEqual(s.ranges[0], blocks[10])

    def test_holes(self) -> None:
        """next_hole walks the holes below SACKed data, once each, capped at max_len."""
        s = SackScoreboard(0)
        s.update(0, 10_000, [(2000, 3000), (5000, 6000)])
        self.assertEqual(s.next_hole(0, 1500), (0, 1500))
        s.retransmitted(1500)
        self.assertEqual(s.next_hole(0, 1500), (1500, 500))
        s.retransmitted(2000)
        self.assertEqual(s.next_hole(0, 1500), (3000, 1500))
        s.retransmitted(4500)
        self.assertEqual(s.next_hole(0, 1500), (4500, 500))
        s.retransmitted(5000)
        self.assertIsNone(s.next_hole(0, 1500))                  # nothing above the last block
        s.retransmitted(100)                                      # never moves back
        self.assertIsNone(s.next_hole(0, 1500))
        s.restart(0)
        self.assertEqual(s.next_hole(0, 1500), (0, 1500))


class NewRenoTests(SynchronousTestCase):
    """L{NewReno}."""

    def test_initial_window(self) -> None:
        """The initial window is that many segments, for small and overlay-sized segments."""
        cc = NewReno(0)
        cc.start(1000, 10)
        self.assertEqual(cc.cwnd, 10_000)
        cc.start(65_000, 10)
        self.assertEqual(cc.cwnd, 650_000)
        cc.start(1220, 4)
        self.assertEqual(cc.cwnd, 4880)

    def test_slow_start_then_avoidance(self) -> None:
        """Slow start grows by min(acked, 2 SMSS) per ACK; above ssthresh one SMSS per window."""
        cc = NewReno(0)
        cc.start(SMSS, 4)
        self.assertFalse(cc.new_ack(5000, 5000, SMSS, False, 5000))
        self.assertEqual(cc.cwnd, 6000)
        cc.ssthresh = 6000
        for _ in range(5):
            cc.new_ack(0, 1000, SMSS, False, 6000)
        self.assertEqual(cc.cwnd, 6000)
        cc.new_ack(0, 1000, SMSS, False, 6000)
        self.assertEqual(cc.cwnd, 7000)

    def test_no_growth_when_not_cwnd_limited(self) -> None:
        """ACKs of a flight under half the window (the app or the peer's window limited it)
        leave cwnd alone, in slow start and in congestion avoidance."""
        cc = NewReno(0)
        cc.start(SMSS, 10)
        cc.new_ack(1000, 1000, SMSS, False, 4999)
        self.assertEqual(cc.cwnd, 10_000)
        cc.new_ack(1000, 1000, SMSS, False, 5000)
        self.assertEqual(cc.cwnd, 11_000)
        cc.ssthresh = 11_000
        for _ in range(20):
            cc.new_ack(1000, 1000, SMSS, False, 2000)
        self.assertEqual(cc.cwnd, 11_000)

    def test_limited_transmit_and_fast_retransmit(self) -> None:
        """Dupacks 1-2 allow limited transmit; the third enters recovery and halves the flight."""
        cc = NewReno(0)
        cc.start(SMSS, 10)
        una, snd_max = 100, 100 + 20_000
        self.assertEqual(cc.duplicate_ack(una, snd_max, SMSS, False), NO_ACTION)
        self.assertEqual(cc.window(0), cc.cwnd + SMSS)
        self.assertEqual(cc.duplicate_ack(una, snd_max, SMSS, False), NO_ACTION)
        self.assertEqual(cc.limited, 2 * SMSS)
        self.assertEqual(cc.duplicate_ack(una, snd_max, SMSS, False), ENTER_RECOVERY)
        self.assertTrue(cc.in_recovery)
        self.assertEqual(cc.ssthresh, 10_000)
        self.assertEqual(cc.cwnd, 13_000)                        # NewReno: + 3 SMSS
        self.assertEqual(cc.limited, 0)
        self.assertEqual(cc.duplicate_ack(una, snd_max, SMSS, False), NO_ACTION)
        self.assertEqual(cc.cwnd, 14_000)                        # inflation
        # a partial ACK deflates and asks for a retransmission; the full ACK ends recovery
        self.assertTrue(cc.new_ack(una + 5000, 5000, SMSS, False, 20_000))
        self.assertEqual(cc.cwnd, 14_000 - 5000 + SMSS)
        self.assertFalse(cc.new_ack(snd_max, 15_000, SMSS, False, 15_000))
        self.assertFalse(cc.in_recovery)
        self.assertEqual(cc.cwnd, 10_000)

    def test_sack_recovery(self) -> None:
        """With SACK: no inflation; duplicate ACKs in recovery ask for the next hole; the window
        counts SACKed bytes as gone."""
        cc = NewReno(0)
        cc.start(SMSS, 10)
        for _ in range(2):
            cc.duplicate_ack(100, 20_100, SMSS, True)
        self.assertEqual(cc.duplicate_ack(100, 20_100, SMSS, True), ENTER_RECOVERY)
        self.assertEqual(cc.cwnd, 10_000)
        self.assertEqual(cc.duplicate_ack(100, 20_100, SMSS, True), RESEND_HOLE)
        self.assertEqual(cc.cwnd, 10_000)
        self.assertEqual(cc.window(3000), 13_000)
        self.assertTrue(cc.new_ack(1100, 1000, SMSS, True, 20_000))
        self.assertEqual(cc.cwnd, 10_000)                        # no deflation with SACK

    def test_no_second_recovery_for_same_loss(self) -> None:
        """Three dupacks below the last recovery point do not start another recovery."""
        cc = NewReno(0)
        cc.start(SMSS, 10)
        cc.timeout(100, 20_100, SMSS, first=True)
        self.assertEqual(cc.recover, 20_100)
        for _ in range(3):
            action = cc.duplicate_ack(5000, 20_100, SMSS, False)
        self.assertEqual(action, NO_ACTION)
        self.assertFalse(cc.in_recovery)

    def test_timeout(self) -> None:
        """An RTO collapses cwnd to one SMSS; only the first of a series halves ssthresh."""
        cc = NewReno(0)
        cc.start(SMSS, 10)
        cc.timeout(0, 30_000, SMSS, first=True)
        self.assertEqual((cc.cwnd, cc.ssthresh, cc.in_recovery), (SMSS, 15_000, False))
        cc.timeout(0, 30_000, SMSS, first=False)
        self.assertEqual(cc.ssthresh, 15_000)
        cc.timeout(0, 1000, SMSS, first=True)
        self.assertEqual(cc.ssthresh, 2 * SMSS)                  # floor of 2 SMSS

    def test_other_ack_resets_dupacks(self) -> None:
        """A window update between duplicates restarts the count."""
        cc = NewReno(0)
        cc.start(SMSS, 10)
        cc.duplicate_ack(100, 20_100, SMSS, False)
        cc.duplicate_ack(100, 20_100, SMSS, False)
        cc.other_ack()
        self.assertEqual((cc.dupacks, cc.limited), (0, 0))
        self.assertEqual(cc.duplicate_ack(100, 20_100, SMSS, False), NO_ACTION)


class RTTTimingTests(SynchronousTestCase):
    """L{RTOEstimator}'s one-segment timing (no timestamps)."""

    def test_times_one_segment(self) -> None:
        """The first timed segment is sampled when an ACK passes it; later ones wait."""
        e = RTOEstimator(initial=1.0, min_rto=0.01)
        e.time_segment(NEAR_WRAP, 10.0)
        e.time_segment((NEAR_WRAP + 50) & MASK, 10.1)            # already timing one
        e.acknowledged(NEAR_WRAP, 10.2)                           # does not cover it
        self.assertIsNone(e.srtt)
        e.acknowledged(5, 10.3)                                   # across the wrap
        self.assertAlmostEqual(e.srtt or 0, 0.3)
        self.assertIsNone(e.timed_seq)

    def test_karn(self) -> None:
        """forget_timing (a retransmission) drops the pending sample."""
        e = RTOEstimator()
        e.time_segment(100, 1.0)
        e.forget_timing()
        e.acknowledged(200, 5.0)
        self.assertIsNone(e.srtt)


class OutOfOrderQueueTests(SynchronousTestCase):
    """L{OutOfOrderQueue}."""

    def test_insert_drain(self) -> None:
        """Overlapping segments drain in order once the gap fills; ranges follow."""
        q = OutOfOrderQueue()
        q.insert(10, b"klmno")
        q.insert(20, b"uv")
        q.insert(12, b"mnopq")
        self.assertEqual(q.ranges, [[10, 17], [20, 22]])
        chunks: list[bytes] = []
        self.assertEqual(q.drain(5, chunks), 5)                   # gap 5..10 still open
        self.assertEqual(chunks, [])
        self.assertEqual(q.drain(11, chunks), 17)
        self.assertEqual(b"".join(chunks), b"lmnopq")
        self.assertEqual(q.ranges, [[20, 22]])
        self.assertEqual(q.drain(20, chunks), 22)
        self.assertEqual((q.segments, q.ranges), ({}, []))

    def test_bounded(self) -> None:
        """Beyond MAX_OOO_SEGMENTS new segments are refused; a longer copy of one held is kept."""
        q = OutOfOrderQueue()
        for i in range(MAX_OOO_SEGMENTS):
            self.assertTrue(q.insert(10 * i + 10, b"x"))
        self.assertFalse(q.insert(1_000_000, b"y"))
        self.assertNotIn(1_000_000, q.segments)
        self.assertTrue(q.insert(10, b"xxx"))
        self.assertEqual(q.segments[10], b"xxx")

    def test_budget_charged_and_released(self) -> None:
        """
        The bytes held, and L{OOO_SEGMENT_COST} per segment, are charged to the budget; a
        segment it cannot take is not kept at all (no range, so no SACK block names it); a
        copy of held data costs nothing; what drains and what is cleared goes back.
        """
        cost = OOO_SEGMENT_COST
        budget = RcvBudget(250 + 3 * cost)
        q = OutOfOrderQueue(budget)
        self.assertTrue(q.insert(100, b"a" * 100))
        self.assertTrue(q.insert(300, b"b" * 100))
        self.assertEqual((budget.used, q.held), (200 + 2 * cost, 200 + 2 * cost))
        self.assertFalse(q.insert(500, b"c" * 100))               # 50 + cost left: refused
        self.assertEqual(q.ranges, [[100, 200], [300, 400]])
        self.assertNotIn(500, q.segments)
        self.assertTrue(q.insert(120, b"a" * 50))                  # inside [100, 200): free
        self.assertTrue(q.insert(300, b"b" * 100))                 # a retransmission: free
        self.assertEqual(budget.used, 200 + 2 * cost)
        self.assertTrue(q.insert(300, b"b" * 120))                 # a longer copy: 20 more
        self.assertTrue(q.insert(180, b"a" * 30))                  # 10 new bytes, a 30-byte copy
        self.assertEqual((budget.used, q.held), (250 + 3 * cost, 250 + 3 * cost))
        chunks: list[bytes] = []
        self.assertEqual(q.drain(100, chunks), 210)
        self.assertEqual(b"".join(chunks), b"a" * 110)
        self.assertEqual((budget.used, q.held), (120 + cost, 120 + cost))  # [300, 420) left
        q.clear()
        self.assertEqual((budget.used, q.held, q.segments, q.ranges), (0, 0, {}, []))

    def test_tiny_segments_are_charged_their_cost(self) -> None:
        """
        Copies at distinct offsets overlap in the ranges but each is stored, so each is
        charged, and a 1-byte segment costs L{OOO_SEGMENT_COST} more: neither overlapping
        copies nor tiny segments hold more memory than the budget counts.
        """
        budget = RcvBudget(3 * (300 + OOO_SEGMENT_COST))
        q = OutOfOrderQueue(budget)
        self.assertEqual(sum(q.insert(10 + i, b"x" * 300) for i in range(10)), 3)
        budget = RcvBudget(10 * (1 + OOO_SEGMENT_COST))
        q = OutOfOrderQueue(budget)
        self.assertEqual(sum(q.insert(10 + 2 * i, b"x") for i in range(100)), 10)
        self.assertEqual(budget.used, budget.limit)

    def test_sack_option(self) -> None:
        """The block holding the latest segment comes first, then the highest others."""
        q = OutOfOrderQueue()
        for off in (100, 300, 500, 700):
            q.insert(off, b"z" * 10)
        q.insert(300, b"z" * 20)                                  # latest: the 300 block
        opt = q.sack_option(base=MASK, max_blocks=3)              # offset 0 = seq MASK
        self.assertEqual(opt[:4], b"\x01\x01\x05\x1a")
        blocks = [(int.from_bytes(opt[4 + 8 * i:8 + 8 * i], "big"),
                   int.from_bytes(opt[8 + 8 * i:12 + 8 * i], "big")) for i in range(3)]
        self.assertEqual(blocks, [(299, 319), (699, 709), (499, 509)])
