"""The shared harness of ``benchmarks/``: what every benchmark script needs, written once.

The scripts are run as ``python benchmarks/NAME.py``, so ``benchmarks/`` is first on
``sys.path`` and ``import harness`` finds this package; importing it also puts the repository
root on ``sys.path``, for ``testkit`` (test-only servers and data makers, not installed). A script
therefore imports ``harness`` before ``testkit``, which is also where ruff's import sorting puts it
(``harness`` is not a top-level folder of the repository, so it sorts with the third-party imports).
Tests put ``benchmarks/`` on ``sys.path`` themselves (``tests/benchmarks/test_harness.py``).

- :mod:`harness.paths`: the repository root and the ``benchmarks/_work`` scratch folder;
- :mod:`harness.net`: a free loopback port, an opener that never goes through a proxy, the
  environment of loopback-only child processes;
- :mod:`harness.timing`: machine CPU load, waiting for a quiet machine, one-core pinning and
  best-of-rounds timing;
- :mod:`harness.table`: markdown and terminal tables;
- :mod:`harness.photos`: photo-like JPEGs and a cached corpus of them on disk;
- :mod:`harness.jobs`: ``spark-submit`` runs of the jobs, timed, on loopback.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
