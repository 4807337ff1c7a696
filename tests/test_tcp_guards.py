# -*- test-case-name: tests.test_tcp_guards -*-
"""
The loss-recovery thresholds of the overlay TCP (RFC 5681 section 3.2, RFC 3042), each shown to
hold from both sides (issue 11, item 2): fast retransmit needs exactly three duplicate ACKs, so a
segment reordered by two is not resent, and one lost segment followed by exactly three others is
resent at once, without a retransmission timeout.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from axl.tcp.connection import TCPConfig
from tests.test_tcp_connection import Wire


class DupAckThresholdTests(SynchronousTestCase):
    def wire(self, sack: bool) -> Wire:
        w = Wire(TCPConfig(mtu=1280))
        w.connect()
        w.a.sack_ok = w.b.sack_ok = sack
        w.a.send(b"warm-up")  # the first ACK after the handshake sets the (scaled) window
        w.deliver()
        w.a.cc.cwnd = 20 * w.a.smss
        return w

    def test_reordered_by_two_is_not_resent(self) -> None:
        """A segment overtaken by the next two (two duplicate ACKs) is not retransmitted."""
        for sack in (False, True):
            w = self.wire(sack)
            smss, ssthresh = w.a.smss, w.a.cc.ssthresh
            w.a.send(bytes(6 * smss))
            w.clock.advance(0)  # the segments go out
            first = w.queue.pop(0)
            w.queue.insert(2, first)  # delivered third
            w.deliver()
            self.assertEqual(len(w.b.app.data), 7 + 6 * smss)
            self.assertEqual(len([s for s in w.sent("a") if s.payload]), 1 + 6, f"sack={sack}")
            self.assertEqual(w.a.cc.ssthresh, ssthresh)

    def test_third_duplicate_ack_resends_at_once(self) -> None:
        """One lost segment followed by exactly three: resent on the third duplicate ACK, no RTO."""
        for sack in (False, True):
            w = self.wire(sack)
            smss = w.a.smss
            w.a.send(bytes(4 * smss))
            w.clock.advance(0)
            w.queue.pop(0)  # lost
            w.deliver()
            self.assertEqual(len(w.b.app.data), 7 + 4 * smss, f"sack={sack}")
            self.assertEqual(w.clock.seconds(), 10)  # no time passed: no retransmission timeout
            self.assertEqual(len([s for s in w.sent("a") if s.payload]), 1 + 5)
