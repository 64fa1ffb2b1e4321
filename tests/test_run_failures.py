"""`synthkd run` fails mid-run as a user needs: one line, exit 2, the folder in a known state.

Prefect's task tracebacks go to `run.log`, never the terminal; a run that committed
nothing leaves no folder; one that committed work keeps it and says how to resume.
"""

from __future__ import annotations

import pytest

from tests.fakes.openai_server import FaultyOpenAIServer
from tests.fixtures.fake_teacher import answer, labelled_recipe, synthkd, teacher_spec


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_unknown_teacher_backend_is_one_line_and_leaves_nothing(tmp_path):
    recipe = labelled_recipe(tmp_path)
    out = tmp_path / "run"
    done = synthkd("run", str(recipe), "--out", str(out), "--teacher", "nosuch:x", cache=tmp_path)
    assert done.returncode == 2
    lines = _lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: teacher 'nosuch:x': unknown teacher backend")
    assert not out.exists()


def test_unreachable_teacher_mid_run_leaves_no_folder(tmp_path):
    recipe = labelled_recipe(tmp_path)
    out = tmp_path / "run"
    spec = "openai:gemma-3-270m@http://127.0.0.1:9/v1"
    done = synthkd("run", str(recipe), "--out", str(out), "--teacher", spec, cache=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(_lines(done.stderr)) <= 3, done.stderr
    assert "unreachable" in _lines(done.stderr)[-1]
    assert not out.exists()


def test_teacher_gone_after_committed_work_keeps_the_folder_and_says_resume(tmp_path):
    recipe = labelled_recipe(tmp_path, per_label=40)
    out = tmp_path / "run"
    with FaultyOpenAIServer(answer=answer, go_away_after=30, seed=0) as server:
        done = synthkd(
            "run", str(recipe), "--out", str(out), "--teacher", teacher_spec(server), cache=tmp_path
        )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = _lines(done.stderr)
    assert len(lines) <= 3, done.stderr
    assert "rerun the same command to resume" in lines[-1]
    assert (out / "corpus" / "_delta_log").is_dir()
    log = (out / "run.log").read_text()
    assert "Traceback" in log  # the details are kept, off the terminal


def test_error_lines_carry_no_terminal_codes():
    from synthkd.cli import _one_line

    assert _one_line("\x1b[31mNo space left on device\x1b[0m\n  (os error 28)") == (
        "No space left on device (os error 28)"
    )


@pytest.mark.parametrize(
    ("how", "code", "line"),
    [("kill PID", 143, "stopped by SIGTERM:"), ("Ctrl-C", 130, "interrupted:")],
)
def test_a_stopped_run_says_so_in_one_line_and_leaves_no_server_behind(tmp_path, how, code, line):
    """`kill PID` on a run (SIGTERM to it) or Ctrl-C in its terminal (SIGINT to its whole
    process group): exit 128 + the signal, one line saying how to resume, and Prefect's
    ephemeral API server (a child process) stopped with it, not orphaned."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from tests.fixtures.fake_teacher import ROOT

    recipe = labelled_recipe(tmp_path, per_label=40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(SYNTHKD_CACHE=str(tmp_path), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    with FaultyOpenAIServer(answer=answer, latency=0.05, seed=0) as server:
        command = ["run", str(recipe), "--out", str(tmp_path / "run")]
        err = (tmp_path / "stderr.txt").open("w")  # not a pipe: an orphan would hold it open
        proc = subprocess.Popen(
            [sys.executable, "-m", "synthkd", *command, "--teacher", teacher_spec(server)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )  # fmt: skip
        deadline, servers = time.monotonic() + 300, []
        while time.monotonic() < deadline and proc.poll() is None and not server.stats.requests:
            time.sleep(0.2)  # the flow is running once the teacher is asked
        children = psutil.Process(proc.pid).children(recursive=True)
        servers = [c for c in children if "uvicorn" in " ".join(c.cmdline())]
        assert proc.poll() is None and servers, "the run ended before it could be stopped"
        if how == "Ctrl-C":
            os.killpg(proc.pid, signal.SIGINT)  # the terminal signals every process in the job
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        err.close()
    gone, alive = psutil.wait_procs(servers, timeout=15)
    for orphan in alive:
        orphan.kill()
    assert not alive, "Prefect's API server outlived the run"
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == code, stderr[-2000:]
    assert _lines(stderr)[-1].startswith(line) and "resumes" in stderr
