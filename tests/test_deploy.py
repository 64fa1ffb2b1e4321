"""The README's deployment section works: `prefect deploy` of a shipped deployment
(prefect.yaml) to a local Prefect server, a process worker, one run to completion.

Everything is real (Prefect server on 127.0.0.1, worker, flow run in its own process,
Delta tables, students) except the teacher, the fake OpenAI-compatible server on
127.0.0.1; the run is the tiny two-label recipe, its parameters given at trigger time.
Server and worker run in their own process groups and are stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fakes.openai_server import FaultyOpenAIServer
from tests.fixtures.fake_teacher import answer, labelled_recipe, teacher_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
DEPLOYMENT = "news-topics-nightly"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(home: Path, port: int, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="INFO",
        SYNTHKD_CACHE=str(cache),
        HF_HUB_OFFLINE="1",
        PWD=str(ROOT),  # prefect.yaml's pull step: set_working_directory "{{ $PWD }}"
        COLUMNS="200",
    )
    return env


@contextlib.contextmanager
def _background(args: list[str], env: dict, log: Path):
    """A process in its own group, killed with its children at the end."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_healthy(port: int, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        url = f"http://127.0.0.1:{port}/api/health"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5):
            return
        time.sleep(1)
    raise AssertionError(f"the Prefect server did not start: {log.read_text()[-3000:]}")


def _prefect(*args: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done


def test_prefect_deploy_worker_and_one_run_to_completion(tmp_path):
    recipe = labelled_recipe(tmp_path, per_label=6)
    recipe.write_text(recipe.read_text().replace("patience: 1}", "patience: 1, cv_folds: 2}"))
    port, out = _free_port(), tmp_path / "run"
    env = _env(tmp_path / "prefect", port, tmp_path / "cache")
    server_args = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with (
        FaultyOpenAIServer(answer=answer, max_lifetime_s=1800) as teacher,
        _background(server_args, env, tmp_path / "server.log") as server,
    ):
        _wait_healthy(port, server, tmp_path / "server.log")
        # the README's commands, as a user types them in the project folder
        _prefect("work-pool", "create", "synthkd", "--type", "process", env=env)
        deployed = _prefect("--no-prompt", "deploy", "--name", DEPLOYMENT, env=env)
        assert f"distill/{DEPLOYMENT}" in deployed.stdout
        worker_args = [PREFECT, "worker", "start", "--pool", "synthkd"]
        with _background(worker_args, env, tmp_path / "worker.log"):
            params = {
                "recipe": str(recipe),
                "out_dir": str(out),
                "teacher": teacher_spec(teacher),
                "rounds": 1,
            }
            ran = subprocess.run(
                [PREFECT, "deployment", "run", f"distill/{DEPLOYMENT}",
                 "--params", json.dumps(params), "--watch", "--watch-timeout", "1500"],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=1600,
            )  # fmt: skip
            worker_log = (tmp_path / "worker.log").read_text()
        assert teacher.stats.answered_ok, "the flow run asked the teacher"
    assert ran.returncode == 0 and "Completed" in ran.stdout, (
        ran.stdout[-3000:],
        worker_log[-3000:],
    )
    # the run a scheduled deployment makes: the whole run folder, its rows under a run id
    rows = json.loads((out / "metrics.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert [r["round"] for r in rows] == [0] and rows[0]["run_id"] == summary["run_id"]
    assert (out / "student").is_dir() and (out / "report.md").exists()
    state = json.loads((out / "loop_state.json").read_text())
    assert state["runs"][0]["finished_at"], "a later scheduled run continues from here"
