"""Test-wide settings: offline, a private Prefect home per test process, a shared model cache.

Room-specific fixtures live in their own modules under tests/ (e.g. tests/fixtures/).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_session_tmp = Path(tempfile.mkdtemp(prefix="synthkd-tests-"))
# A Prefect home per pytest process: pytest-xdist workers inherit the controller's
# environment, and two ephemeral Prefect servers must not share one database. A home the
# user set before pytest started is kept.
if os.environ.get("PREFECT_HOME", "") == os.environ.get("SYNTHKD_TESTS_PREFECT_HOME", ""):
    os.environ["PREFECT_HOME"] = os.environ["SYNTHKD_TESTS_PREFECT_HOME"] = str(
        _session_tmp / "prefect"
    )
os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Under pytest-xdist each worker, and every synthkd process it starts, gets its share of
# the cores: two processes with a thread per core each (torch, onnxruntime, llama.cpp)
# spin against each other, and the suite's CPU time rose by half.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _share = str(max(1, len(os.sched_getaffinity(0)) // _workers))
    for _name in ("SYNTHKD_THREADS", "SYNTHKD_LLAMA_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_name, _share)
# Shared model cache (assembled GGUF, converted checkpoints) survives across test runs.
os.environ.setdefault("SYNTHKD_CACHE", str(Path.home() / ".cache" / "synthkd"))


# The longest files, measured (pytest --durations, 2 cores): a killed and resumed run of
# the real teacher and its reference run (about 8 minutes), the two triples students, five
# run kinds. A worker that started them last would end the suite alone.
LONGEST_FILES = ("test_flows_distill.py", "test_triples_loop.py", "test_run_kinds.py")


def pytest_collection_modifyitems(config, items):
    """The longest files first, then files by their number of slow tests, each file's own
    order kept: the two xdist workers (one file at a time) start on the whole runs, and
    quick files fill the end."""
    weight: dict = {}
    for item in items:
        weight[item.path] = weight.get(item.path, 0) + bool(item.get_closest_marker("slow"))
    for path in weight:
        if path.name in LONGEST_FILES:
            weight[path] = 10_000 - LONGEST_FILES.index(path.name)
    items.sort(key=lambda item: -weight[item.path])
