# -*- test-case-name: tests.test_ratelimit -*-
"""
Rate limits and aggregated log lines, for every place a remote party can make us work or log
(issue 12): L{TokenBucket} (driven by an injected clock) and L{AggregatedLog}, which turns a
stream of repetitive warnings into at most a few lines per window ("refused 1,234 handshakes
from X in the last 60 s"); L{DropCounter} counts what a bounded holding queue dropped (packets
waiting for a path, an address lookup or a session) and says so at most once per interval.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

__all__ = ["TokenBucket", "KeyedLimiter", "AggregatedLog", "DropCounter", "truncate"]


class TokenBucket:
    """
    A token bucket: C{burst} tokens at most, refilled at C{rate} tokens per second.

    @ivar rate: tokens added per second.
    @ivar burst: the most tokens the bucket holds (it starts full).
    """

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, clock: IReactorTime, rate: float, burst: float) -> None:
        if rate < 0 or burst <= 0:
            raise ValueError("a token bucket needs rate >= 0 and burst > 0")
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = clock.seconds()

    def tokens(self) -> float:
        """The tokens available now."""
        now = self._clock.seconds()
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._tokens

    def take(self, n: float = 1.0) -> bool:
        """Take C{n} tokens if there are that many; return whether they were taken."""
        if self.tokens() >= n:
            self._tokens -= n
            return True
        return False


class KeyedLimiter:
    """
    A L{TokenBucket} per key (an address, a public key), plus an optional overall bucket that
    all keys share. At most C{max_keys} keys are remembered: past that, keys whose bucket is
    full again are forgotten (they lose nothing), and if none is, all are.
    """

    def __init__(
        self,
        clock: IReactorTime,
        rate: float,
        burst: float,
        *,
        total_rate: float | None = None,
        total_burst: float | None = None,
        max_keys: int = 4096,
    ) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._buckets: dict[object, TokenBucket] = {}
        self._total = (
            TokenBucket(clock, total_rate, total_burst or total_rate)
            if total_rate is not None
            else None
        )

    def allow(self, key: object) -> bool:
        """Take a token for C{key} (and from the overall bucket); whether there was one."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets = {k: b for k, b in self._buckets.items() if b.tokens() < b.burst}
                if len(self._buckets) >= self._max_keys:
                    self._buckets.clear()
            bucket = self._buckets[key] = TokenBucket(self._clock, self.rate, self.burst)
        if bucket.tokens() < 1:
            return False
        if self._total is not None and not self._total.take():
            return False
        return bucket.take()


def truncate(value: object, limit: int = 64) -> str:
    """C{str(value)} cut to C{limit} characters (with a marker), for values a remote party chose."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} chars)"


class AggregatedLog:
    """
    One warning per event at most a few times per window; the rest counted and summarised.

    The first event of a window for a source is logged at once (at most C{immediate} such lines
    per window); the others are counted per source, and when the window ends one line per
    source (at most C{max_sources} sources, the rest folded into one line) says how many there were:
    C{"refused 1234 handshakes from 192.0.2.1 in the last 60 s (last: reason)"}. So a flood of
    any size from any number of sources costs at most C{immediate + max_sources + 1} lines per
    window.

    @ivar what: the counted event, plural, after its count (C{"handshakes"}).
    @ivar verb: what was done to them (C{"refused"}).
    @ivar level: the lines' log level (warn unless said otherwise).
    """

    def __init__(
        self,
        clock: IReactorTime,
        log: Logger,
        verb: str,
        what: str,
        *,
        window: float = 60.0,
        immediate: int = 8,
        max_sources: int = 16,
        preposition: str = "from",
        level: LogLevel = LogLevel.warn,
    ) -> None:
        self._clock = clock
        self._log = log
        self._level = level
        self.verb = verb
        self.what = what
        self.window = window
        self.preposition = preposition
        self._immediate_max = immediate
        self._max_sources = max_sources
        self._immediate = 0
        self._counts: dict[str, int] = {}
        self._last: dict[str, str] = {}
        self._others = 0
        self._timer: IDelayedCall | None = None
        #: every event counted, for tests and metrics
        self.total = 0

    def event(self, source: str, reason: str) -> None:
        """Count one event from C{source} (logged now or in the window's summary)."""
        self.total += 1
        source = truncate(source)
        if self._timer is None:
            self._timer = self._clock.callLater(self.window, self._flush)
        if source not in self._counts and self._immediate < self._immediate_max:
            self._immediate += 1
            self._counts[source] = 0  # logged; only later events are summarised
            self._log.emit(self._level, "{verb} {what} {prep} {source}: {reason}",
                           verb=self.verb, what=_singular(self.what), source=source,
                           prep=self.preposition, reason=truncate(reason, 200))  # fmt: skip
            return
        if source in self._counts:
            self._counts[source] += 1
            self._last[source] = reason
        elif len(self._counts) < self._max_sources:
            self._counts[source] = 1
            self._last[source] = reason
        else:
            self._others += 1

    def _flush(self) -> None:
        self._timer = None
        counts, last, others = self._counts, self._last, self._others
        self._counts, self._last, self._others, self._immediate = {}, {}, 0, 0
        for source, n in counts.items():
            if n:
                self._log.emit(
                    self._level,
                    "{verb} {n} {what} {prep} {source} in the last {window:g} s (last: {reason})",
                    verb=self.verb, n=n, what=self.what, source=source, window=self.window,
                    prep=self.preposition,
                    reason=truncate(last.get(source, ""), 200),
                )  # fmt: skip
        if others:
            self._log.emit(self._level, "{verb} {n} {what} {prep} others in the last {window:g} s",
                           verb=self.verb, n=others, what=self.what, window=self.window,
                           prep=self.preposition)  # fmt: skip

    def stop(self) -> None:
        """Log what is pending now and cancel the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._flush()


def _singular(what: str) -> str:
    return what[:-1] if what.endswith("s") else what


class DropCounter:
    """
    Counts dropped items and logs a warning with the count at most every C{interval} seconds
    (the first drop at once, later ones summed up into the next line).

    @ivar total: everything dropped so far.
    """

    __slots__ = ("_clock", "_fields", "_format", "_last", "_log", "_interval", "_unlogged", "total")

    def __init__(
        self,
        clock: IReactorTime,
        log: Logger,
        log_format: str,
        interval: float = 10.0,
        **fields: object,
    ) -> None:
        """
        @param log_format: the warning, with C{{n}} for the count and C{fields} for the rest.
        """
        self._clock = clock
        self._log = log
        self._format = log_format
        self._fields = fields
        self._interval = interval
        self._last = -interval
        self._unlogged = 0
        self.total = 0

    def add(self, count: int = 1) -> None:
        """C{count} more items were dropped."""
        self.total += count
        self._unlogged += count
        now = self._clock.seconds()
        if now - self._last >= self._interval:
            self._log.warn(self._format, n=self._unlogged, **self._fields)  # noqa: G010 - twisted.logger
            self._unlogged = 0
            self._last = now
