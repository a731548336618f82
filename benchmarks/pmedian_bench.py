"""Seed 002 Tables 1-2 (p-median quality and run time): `python benchmarks/pmedian_bench.py [--quick] [--out DIR]`.

Same as `qkdbed plan key-servers --benchmark`; this wrapper pins BLAS to one thread before numpy loads, as the
timing protocol asks (planning.md §B.6 item 4).
"""

import os as _os
import sys as _sys

# benchmarks/testbed.py shares its name with the package: keep this folder off the import path.
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _os.path.dirname(_os.path.abspath(__file__))]

import os
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

from testbed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["qkdbed", "plan", "key-servers", "--benchmark", *sys.argv[1:]]
    main()
