"""
The benchmark runner's bookkeeping (L{bench.run}): the history file and README's generated
table. The benchmarks themselves are not run here (speed is measured by C{python -m bench}).
"""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from bench.common import REGISTRY, Figure, Options, benchmark
from bench.run import BEGIN, END, append_history, read_history, readme_table, update_readme


def _run(value: float, quick: bool = False, commit: str = "a" * 40, cores: int = 2,
         profiled: bool = False) -> dict[str, object]:
    return {
        "time": "2026-12-05T01:00:00Z", "commit": commit, "dirty": False, "quick": quick,
        "profiled": profiled, "machine": {"cpu": "CPU", "cores": cores, "python": "CPython 3.11"},
        "load_before": [1.0], "load_after": [2.0], "titles": {"x": "the x bench"},
        "figures": {"x.rate": {"label": "x rate", "value": value, "unit": "msgs/s",
                               "better": "higher", "target": 100.0}},
    }  # fmt: skip


class HistoryTests(TestCase):
    def test_append_and_read(self) -> None:
        """Runs are appended one per line and read back in order; a broken line is skipped."""
        path = self.mktemp()
        append_history(_run(1.0), path)
        with open(path, "a") as f:
            f.write("{not json\n")
        append_history(_run(2.0), path)
        self.assertEqual([r["figures"]["x.rate"]["value"] for r in read_history(path)], [1.0, 2.0])

    def test_missing_history(self) -> None:
        self.assertEqual(read_history(self.mktemp()), [])


class ReadmeTableTests(TestCase):
    def test_latest_full_run_and_range(self) -> None:
        """The latest full run's value, the range over full runs; quick and profiled runs are ignored."""
        table = readme_table([_run(90.0), _run(120.0, commit="b" * 40), _run(5.0, quick=True),
                              _run(7.0, profiled=True)])
        self.assertIn("| `x`: the x bench | x rate | 120 msgs/s | 90.0–120 (2) | ≥ 100 | bbbbbbbb |", table)
        self.assertNotIn("5.00", table)

    def test_missed_target(self) -> None:
        self.assertIn("≥ 100 (missed)", readme_table([_run(90.0)]))

    def test_range_only_same_core_count(self) -> None:
        table = readme_table([_run(10.0, cores=8), _run(120.0)])
        self.assertIn("| 120 msgs/s |  |", table)

    def test_no_full_run(self) -> None:
        self.assertIn("No full benchmark run", readme_table([_run(1.0, quick=True)]))

    def test_update_readme_between_markers(self) -> None:
        """Only the text between the markers changes; a second update changes nothing."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(f"before\n{BEGIN}\nold figures\n{END}\nafter\n")
        self.assertTrue(update_readme([_run(120.0)], path))
        with open(path) as f:
            text = f.read()
        self.assertTrue(text.startswith(f"before\n{BEGIN}\n"))
        self.assertTrue(text.endswith(f"{END}\nafter\n"))
        self.assertNotIn("old figures", text)
        self.assertIn("120 msgs/s", text)
        self.assertFalse(update_readme([_run(120.0)], path))

    def test_update_readme_without_markers(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("no markers\n")
        self.assertRaises(SystemExit, update_readme, [_run(1.0)], path)

    def test_readme_has_markers(self) -> None:
        """The project README carries the markers the runner writes between."""
        with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")) as f:
            text = f.read()
        self.assertIn(BEGIN, text)
        self.assertIn(END, text)


class RegistryTests(TestCase):
    def test_register_and_figure_targets(self) -> None:
        @benchmark("test-only", "a registered function")
        def measure(opts: Options) -> list[Figure]:
            return [Figure("test-only.t", "t", 2.0, "ms", better="lower", target=1.5)]

        self.addCleanup(REGISTRY.pop, "test-only")
        (fig,) = REGISTRY["test-only"].function(Options(quick=True))
        self.assertFalse(fig.met())
        self.assertTrue(Figure("k", "l", 1.0, "ms", better="lower", target=1.5).met())
        self.assertIsNone(Figure("k", "l", 1.0, "ms").met())

    def test_duplicate_name_refused(self) -> None:
        @benchmark("test-dup", "one")
        def one(opts: Options) -> list[Figure]:
            return []

        self.addCleanup(REGISTRY.pop, "test-dup")

        def other(opts: Options) -> list[Figure]:
            return []

        self.assertRaises(ValueError, benchmark("test-dup", "two"), other)
