# -*- test-case-name: tests.test_ratelimit -*-
"""Tests for L{axl.ratelimit}: token buckets on a clock, aggregated log lines, truncation."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from axl.ratelimit import AggregatedLog, TokenBucket, truncate


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        """A bucket gives its burst at once, then C{rate} tokens per second, never more than the burst."""
        clock = Clock()
        bucket = TokenBucket(clock, rate=2.0, burst=3.0)
        self.assertEqual([bucket.take() for _ in range(4)], [True, True, True, False])
        clock.advance(0.5)
        self.assertTrue(bucket.take())
        self.assertFalse(bucket.take())
        clock.advance(100)
        self.assertEqual(bucket.tokens(), 3.0)

    def test_bad_parameters(self) -> None:
        """A bucket needs a positive burst and a non-negative rate."""
        self.assertRaises(ValueError, TokenBucket, Clock(), -1.0, 1.0)
        self.assertRaises(ValueError, TokenBucket, Clock(), 1.0, 0.0)


class AggregatedLogTests(SynchronousTestCase):
    def test_flood_costs_a_few_lines(self) -> None:
        """
        100,000 events from 1,000 sources cost at most immediate + max_sources + 1 lines per
        window, and the summary counts every event.
        """
        clock = Clock()
        agg = AggregatedLog(clock, Logger(), "refused", "handshakes", immediate=8, max_sources=16)
        with capturedLogs() as events:
            for i in range(100_000):
                agg.event(f"10.0.{i % 1000 // 250}.{i % 250}", "too many")
            clock.advance(60)
        self.assertLessEqual(len(events), 8 + 16 + 1)
        self.assertEqual(agg.total, 100_000)
        counted = len([e for e in events if "n" not in e]) + sum(e.get("n", 0) for e in events)
        self.assertEqual(counted, 100_000)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_summary_line(self) -> None:
        """The window's summary names the source, the count and the window."""
        clock = Clock()
        agg = AggregatedLog(clock, Logger(), "refused", "handshakes")
        with capturedLogs() as events:
            for _ in range(1235):
                agg.event("192.0.2.1", "slots full")
            clock.advance(60)
        self.assertEqual(len(events), 2)
        self.assertEqual(events[1]["n"], 1234)
        self.assertEqual(events[1]["source"], "192.0.2.1")

    def test_long_values_truncated(self) -> None:
        """A source or reason chosen by a remote party is cut in the log."""
        with capturedLogs() as events:
            agg = AggregatedLog(Clock(), Logger(), "refused", "things")
            agg.event("x" * 16000, "y" * 16000)
            agg.stop()
        self.assertLess(len(events[0]["source"]), 100)
        self.assertLess(len(events[0]["reason"]), 300)
        self.assertEqual(truncate("abc"), "abc")
        self.assertIn("(16000 chars)", truncate("z" * 16000))
