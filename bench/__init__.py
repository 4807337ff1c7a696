"""
The benchmarks: one module per layer or whole-node scenario (C{bench_*.py}), each registering its
measurements with L{bench.common.benchmark}, and the one runner (C{python -m bench}, L{bench.run})
that runs them, prints one table, appends to C{bench/history.jsonl} and regenerates README's
table. They are scripts, not tests.
"""
