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
# Shared model cache (assembled GGUF, converted checkpoints) survives across test runs.
os.environ.setdefault("SYNTHKD_CACHE", str(Path.home() / ".cache" / "synthkd"))
