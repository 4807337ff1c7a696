"""
Counting what a limit dropped, and saying so without flooding the log: L{DropCounter} is used by
every bounded holding queue of the node (packets waiting for a path, an address lookup or a
session; see the README's Routing and Sessions sections).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = ["DropCounter"]


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
