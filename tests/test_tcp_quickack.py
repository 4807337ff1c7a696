# -*- test-case-name: tests.test_tcp_quickack -*-
"""
When the receiving half of L{axl.tcp.connection.Connection} acknowledges (Linux's heuristics on
top of RFC 5681 4.2 delayed ACKs), and that the sender sends small writes at once with PSH.
All timing on a L{Clock}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from axl.tcp.connection import MAX_QUICKACKS, TCPConfig
from axl.tcp.segment import ACK, PSH, Segment, build_tcp, decode_segment, ts_option
from tests.test_tcp_connection import A_ADDR, B_ADDR, Wire


class Injector:
    """
    Hand-made data segments from A straight into B (bypassing A's sender, so the flags and
    sizes are ours to choose); records the pure ACKs B sends in reply.
    """

    def __init__(self, w: Wire) -> None:
        self.w = w
        self.seq = w.b.rcv_nxt
        self.ts = int(w.clock.seconds() * 1000)
        w.queue.clear()
        self.acks: list[Segment] = []

    def send(self, size: int, flags: int = ACK) -> None:
        """One in-order segment of C{size} bytes with C{flags}; collect what B answers."""
        w = self.w
        self.ts = max(self.ts + 1, int(w.clock.seconds() * 1000))
        raw = build_tcp(A_ADDR, B_ADDR, 1000, 80, self.seq, w.b.snd_nxt, flags, 65535,
                        ts_option(self.ts, 0), bytes(size))
        w.b.segment_arrived(decode_segment(raw))
        self.seq = (self.seq + size) & 0xFFFFFFFF
        self.collect()

    def collect(self) -> None:
        """Move B's pure ACKs off the wire into C{acks}."""
        self.acks += [s for side, s in self.w.queue if side == "b" and not s.payload]
        self.w.queue.clear()

    def acked(self) -> int:
        """The highest sequence number B has acknowledged so far (0 if none)."""
        return self.acks[-1].ack if self.acks else 0

    def leave_quickack(self) -> None:
        """Send the start-of-connection quick-ACK allowance of non-PSH segments."""
        for _ in range(MAX_QUICKACKS):
            self.send(100)
        self.acks.clear()


def warmed_up(cfg: TCPConfig | None = None) -> tuple[Wire, Injector]:
    """A connected wire whose receiver B has left the start-up quick-ACK mode."""
    w = Wire(cfg)
    w.connect()
    inj = Injector(w)
    inj.leave_quickack()
    return w, inj


class QuickAckTests(SynchronousTestCase):
    """The receiver ACKs at once when waiting would only stall the sender."""

    def test_quickack_at_start(self) -> None:
        """The first MAX_QUICKACKS data segments, even without PSH, are each ACKed at once."""
        w = Wire()
        w.connect()
        inj = Injector(w)
        for i in range(MAX_QUICKACKS):
            inj.send(100)
            self.assertEqual(len(inj.acks), i + 1)
            self.assertEqual(inj.acked(), inj.seq)
        self.assertEqual(w.clock.seconds(), 10)            # no time passed

    def test_lone_push_segment_acked_at_once(self) -> None:
        """Out of quick-ACK mode, a lone small segment with PSH the app took is ACKed at once."""
        w, inj = warmed_up()
        inj.send(100, ACK | PSH)
        self.assertEqual(len(inj.acks), 1)
        self.assertEqual(inj.acked(), inj.seq)
        self.assertEqual(w.b._unacked_segs, 0)

    def test_lone_segment_without_push_waits_40ms(self) -> None:
        """A lone small segment without PSH is ACKed by the delayed-ACK timer at 40 ms, not before."""
        w, inj = warmed_up()
        inj.send(100)
        self.assertEqual(inj.acks, [])
        w.clock.advance(0.039)
        inj.collect()
        self.assertEqual(inj.acks, [])
        w.clock.advance(0.001)
        inj.collect()
        self.assertEqual(len(inj.acks), 1)
        self.assertEqual(inj.acked(), inj.seq)

    def test_push_while_reading_paused_waits_for_the_app(self) -> None:
        """
        A PSH segment the app has not taken (reading paused) is not ACKed at once; when the app
        resumes and drains it, the ACK goes out then.
        """
        w, inj = warmed_up()
        w.b.pause_reading()
        inj.send(100, ACK | PSH)
        self.assertEqual(inj.acks, [])
        w.clock.advance(0.02)
        w.b.resume_reading()
        inj.collect()
        self.assertEqual(len(inj.acks), 1)
        self.assertEqual(inj.acked(), inj.seq)
        self.assertEqual(len(w.b.app.data), 100 * (MAX_QUICKACKS + 1))

    def test_push_while_reading_paused_delayed_ack(self) -> None:
        """If the app never drains the PSH segment, the delayed ACK still fires at 40 ms."""
        w, inj = warmed_up()
        w.b.pause_reading()
        inj.send(100, ACK | PSH)
        w.clock.advance(0.039)
        inj.collect()
        self.assertEqual(inj.acks, [])
        w.clock.advance(0.001)
        inj.collect()
        self.assertEqual(inj.acked(), inj.seq)

    def test_idle_reenters_quickack(self) -> None:
        """After more than an RTO without data, the next segment (no PSH) is ACKed at once."""
        w, inj = warmed_up()
        w.clock.advance(w.b.rto.rto + 0.5)
        inj.send(100)
        self.assertEqual(len(inj.acks), 1)
        self.assertEqual(inj.acked(), inj.seq)

    def test_no_idle_no_quickack(self) -> None:
        """Segments less than an RTO apart, without PSH, keep the delayed ACK."""
        w, inj = warmed_up()
        w.clock.advance(w.b.rto.rto / 2)
        inj.send(100)
        self.assertEqual(inj.acks, [])


class BulkAckTests(SynchronousTestCase):
    """Bulk data still draws one ACK per two full-size segments."""

    def test_every_second_full_segment(self) -> None:
        """20 full-size segments without PSH draw exactly 10 ACKs, each right after an even one."""
        w, inj = warmed_up(TCPConfig(mtu=1280))
        for i in range(20):
            inj.send(w.b.smss)
            self.assertEqual(len(inj.acks), (i + 1) // 2)
        self.assertEqual(inj.acked(), inj.seq)

    def test_sender_bulk_ack_count(self) -> None:
        """
        A 20-segment write through the real sender, after the quick-ACK phase, draws 10 ACKs;
        a 21-segment one 11 (its last, PSH segment is ACKed at once), with no timer needed.
        """
        for n, expected in ((20, 10), (21, 11)):
            w, inj = warmed_up(TCPConfig(mtu=1280))
            w.a.snd_nxt = w.a.snd_max = w.a.snd_una = w.a.sndbuf.seq = inj.seq  # A takes over
            w.a._ts_offset = inj.ts - int(w.clock.seconds() * 1000) + 1
            start = len(w.log)
            w.a.send(bytes(w.a.smss * n))
            w.deliver()
            log = w.log[start:]
            data = [s for side, s in log if side == "a" and s.payload]
            acks = [s for side, s in log if side == "b" and not s.payload]
            self.assertEqual(len(data), n)
            self.assertEqual([bool(s.flags & PSH) for s in data], [False] * (n - 1) + [True])
            self.assertEqual(len(acks), expected)
            self.assertEqual(w.a.snd_una, w.a.snd_max)
            self.assertEqual(w.clock.seconds(), 10)

    def test_out_of_quickack_counted(self) -> None:
        """Quick-ACK mode ends: the segment after the allowance is held for the timer."""
        w = Wire(TCPConfig(mtu=1280))
        w.connect()
        inj = Injector(w)
        for _ in range(MAX_QUICKACKS):
            inj.send(w.b.smss)
        self.assertEqual(len(inj.acks), MAX_QUICKACKS)
        inj.send(w.b.smss)
        self.assertEqual(len(inj.acks), MAX_QUICKACKS)
        inj.send(w.b.smss)
        self.assertEqual(len(inj.acks), MAX_QUICKACKS + 1)


class SenderTests(SynchronousTestCase):
    """The sender side of a small message: no Nagle, PSH on the last segment."""

    def test_small_message_acked_without_timer(self) -> None:
        """
        Each 100-byte write, during and after the quick-ACK phase, is sent with PSH and fully
        ACKed with no time passing (the bridge's /send waits for exactly this).
        """
        w = Wire()
        w.connect()
        for _ in range(MAX_QUICKACKS + 4):
            start = len(w.log)
            w.a.send(b"q" * 100)
            w.deliver()
            (seg,) = [s for side, s in w.log[start:] if side == "a"]
            self.assertEqual((len(seg.payload), bool(seg.flags & PSH)), (100, True))
            self.assertEqual(w.a.snd_una, w.a.snd_max)
        self.assertEqual(w.clock.seconds(), 10)

    def test_no_nagle(self) -> None:
        """A small write goes out on the next clock turn even while earlier small data is unacked."""
        w = Wire()
        w.connect()
        w.queue.clear()
        w.a.send(b"one")
        w.clock.advance(0)
        w.a.send(b"two")
        w.clock.advance(0)
        sent = [s for side, s in w.queue if side == "a"]
        self.assertEqual([bytes(s.payload) for s in sent], [b"one", b"two"])
        self.assertTrue(all(s.flags & PSH for s in sent))
