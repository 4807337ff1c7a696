"""
What every benchmark module shares: the L{Figure} a measurement produces and the L{benchmark}
decorator that registers a measuring function with the runner (L{bench.run}).

A new benchmark joins the runner with a few lines in a module C{bench/bench_NAME.py}::

    from bench.common import Figure, Options, benchmark

    @benchmark("name", "what it measures, in a few words")
    def measure(opts: Options) -> list[Figure]:
        n = 1_000 if opts.quick else 20_000       # --quick: the whole runner under a minute
        ...
        return [Figure("name.rate", "what this figure is", n / elapsed, "msgs/s")]

The runner imports every C{bench/bench_*.py}, runs each registered function in a fresh process
and records its figures under their keys (keep a key stable: the history and README's table
follow it). C{Figure.better} says which way is good, C{target} is the goal if there is one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # a script run as bench/bench_x.py imports axl and tests from here
    sys.path.insert(0, ROOT)

__all__ = ["ROOT", "Benchmark", "Figure", "Options", "benchmark", "REGISTRY", "print_figures", "run_standalone"]


@dataclass(frozen=True)
class Figure:
    """
    One measured figure.

    @ivar key: stable identifier, C{"<benchmark>.<what>"}; the history and README follow it.
    @ivar label: what was measured, for the table.
    @ivar better: C{"higher"} or C{"lower"}.
    @ivar target: the goal (at least it if higher is better, at most it otherwise), or None.
    """

    key: str
    label: str
    value: float
    unit: str
    better: str = "higher"
    target: float | None = None

    def met(self) -> bool | None:
        """Whether the target is reached (None without a target)."""
        if self.target is None:
            return None
        return self.value >= self.target if self.better == "higher" else self.value <= self.target

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Options:
    """
    How the runner asks for a run.

    @ivar quick: a short run (the whole runner in under a minute), noisier figures.
    @ivar profile: a directory for cProfile output, for benchmarks that support it (else None).
    @ivar log: where a benchmark may print progress and details (the runner's table is separate).
    """

    quick: bool = False
    profile: str | None = None
    log: Callable[[str], None] = field(default=lambda text: print(text, flush=True))


@dataclass(frozen=True)
class Benchmark:
    """A registered measuring function and where it lives."""

    name: str
    title: str
    module: str
    function: Callable[[Options], list[Figure]]
    profiles: bool


#: Every registered benchmark by name, in registration order.
REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, title: str, profiles: bool = False
) -> Callable[[Callable[[Options], list[Figure]]], Callable[[Options], list[Figure]]]:
    """
    Register C{function(options) -> [Figure, ...]} as the benchmark C{name}.

    @param profiles: whether it honours C{Options.profile}.
    """

    def register(function: Callable[[Options], list[Figure]]) -> Callable[[Options], list[Figure]]:
        if name in REGISTRY:
            if REGISTRY[name].function.__qualname__ != function.__qualname__:
                raise ValueError(f"two benchmarks named {name!r}")
            return function  # the same module imported under another name (bench_x, bench.bench_x)
        REGISTRY[name] = Benchmark(name, title, function.__module__, function, profiles)
        return function

    return register


def format_value(value: float) -> str:
    """A figure with three significant digits or so (no false precision)."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_figures(figures: list[Figure]) -> None:
    """Print figures one per line (a benchmark script run on its own)."""
    for f in figures:
        target = ""
        if f.target is not None:
            sign = ">=" if f.better == "higher" else "<="
            target = f"   (target {sign} {format_value(f.target)}{' ok' if f.met() else ' MISSED'})"
        print(f"{f.label}: {format_value(f.value)} {f.unit}{target}", flush=True)


def run_standalone(function: Callable[[Options], list[Figure]], argv: list[str] | None = None) -> None:
    """
    The C{__main__} of a benchmark module: C{--quick} and C{--profile DIR} as the runner has
    them; prints the figures.
    """
    import argparse

    parser = argparse.ArgumentParser(description=(sys.modules[function.__module__].__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--profile", metavar="DIR", help="cProfile output directory (if supported)")
    args = parser.parse_args(argv)
    print_figures(function(Options(quick=args.quick, profile=args.profile)))
