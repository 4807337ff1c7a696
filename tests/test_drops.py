# -*- test-case-name: tests.test_drops -*-
"""Tests for L{axl.ratelimit.DropCounter}: counted drops, logged aggregated."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from axl.ratelimit import DropCounter


class DropCounterTests(SynchronousTestCase):
    def test_aggregated(self) -> None:
        """The first drop is logged at once; later ones are summed into one line per interval."""
        clock = Clock()
        drops = DropCounter(clock, Logger(), "dropped {n} things (limit {limit})", 10.0, limit=3)
        with capturedLogs() as events:
            drops.add()
            drops.add(2)
            clock.advance(5)
            drops.add()
            clock.advance(5)
            drops.add(4)
        self.assertEqual([(e["n"], e["limit"]) for e in events], [(1, 3), (7, 3)])
        self.assertEqual(drops.total, 8)
