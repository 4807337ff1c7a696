"""C{python -m bench}: the benchmark runner (L{bench.run})."""

from bench.run import main

main()
