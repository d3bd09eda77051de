"""``python -m benchmarks``: run the core benchmark (see :mod:`benchmarks.bench_core`)."""

import sys

from benchmarks.bench_core import main

if __name__ == "__main__":
    sys.exit(main())
