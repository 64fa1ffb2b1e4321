"""Run folders and corpora on S3: a real S3-compatible server (moto's server mode) on
127.0.0.1, the real CLI in subprocesses, real Delta tables written there by deltalake.

Covered: create, append across rounds, resume after a kill (with the local working copy
gone, as on another machine), time travel (`corpus versions`, `diff`, `show --version`)
and export; and that the secret key reaches no object, no working-copy file, no output.
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
import uuid
from pathlib import Path

import pytest

from synthkd.data import CorpusStore, RunFolder
from tests.fakes import FaultyOpenAIServer
from tests.fixtures.data_corpus import build_run
from tests.fixtures.fake_teacher import (
    ROOT,
    answer,
    labelled_recipe,
    set_loop,
    synthkd,
    teacher_spec,
)

pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")

SECRET = f"sk-{uuid.uuid4().hex}"  # the one credential; no file or output may hold it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 (its own process, stopped at the end: deltalake holds
    the GIL through some network calls, so an in-process server thread would stall), the
    environment's credentials set as a user sets them."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "synthkd-test",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "SYNTHKD_WORKDIR": str(tmp_path_factory.mktemp("work")),
    }
    saved = {k: os.environ.get(k) for k in env}
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket="synthkd")
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        os.environ.update(env)
        yield client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.terminate()
        server.wait(timeout=30)


def objects(client, prefix: str) -> dict[str, bytes]:
    """Every object under s3://synthkd/PREFIX, by key relative to it."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="synthkd", Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket="synthkd", Key=item["Key"])["Body"].read()
            found[item["Key"][len(prefix) :].lstrip("/")] = body
    return found


def assert_no_secret(client, prefix: str, *texts: str, folder: Path | None = None) -> None:
    for key, body in objects(client, prefix).items():
        assert SECRET.encode() not in body, f"the secret key reached s3://synthkd/{prefix}/{key}"
    for text in texts:
        assert SECRET not in text
    for path in folder.rglob("*") if folder is not None else []:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the secret key reached {path}"


def test_corpus_commands_time_travel_and_export_a_corpus_on_s3(s3, tmp_path):
    uri = "s3://synthkd/built"
    build_run(uri, rounds=3, per_round=30)  # create + three appends, straight to S3
    corpus = CorpusStore(f"{uri}/corpus")
    assert corpus.version() == 3 and corpus.count() == 90
    assert corpus.count(1) == 30  # time travel: version 1 holds round 0 only
    assert "_delta_log/00000000000000000003.json" in "\n".join(objects(s3, "built/corpus"))

    versions = synthkd("corpus", "versions", uri, cache=tmp_path / "cache")
    assert versions.returncode == 0, versions.stderr
    assert "round 2: generation" in versions.stdout and " 90 " in versions.stdout

    diff = synthkd("corpus", "diff", uri, "1", "3", cache=tmp_path / "cache")
    assert diff.returncode == 0, diff.stderr
    assert "version 1 -> 3: +60 added, -0 removed" in diff.stdout

    show = synthkd("corpus", "show", uri, "--version", "2", cache=tmp_path / "cache")
    assert show.returncode == 0, show.stderr
    assert "2 (latest 3, 4 versions)" in show.stdout

    out = tmp_path / "export"
    export = synthkd(
        "corpus", "export", f"{uri}/corpus", "--to", out, "--version", "2",
        "--split", "train=0.8,validation=0.2", cache=tmp_path / "cache",
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    assert "exported version 2" in export.stdout
    import datasets

    exported = datasets.load_dataset("parquet", data_dir=str(out / "data"))
    assert exported["train"].num_rows + exported["validation"].num_rows == 60
    assert (out / "README.md").is_file()
    assert not Path(ROOT / "s3:").exists(), "the URI became a local folder"
    assert_no_secret(s3, "built", versions.stdout, diff.stdout, show.stdout, folder=out)


def test_generate_writes_its_corpus_to_s3_and_a_rerun_appends_nothing_twice(s3, tmp_path):
    recipe = labelled_recipe(tmp_path, per_label=6)
    uri = "s3://synthkd/generated"
    with FaultyOpenAIServer(answer=answer) as server:
        args = ("generate", recipe, "--out", uri, "--teacher", teacher_spec(server), "--json")
        first = synthkd(*args, cache=tmp_path / "cache")
        assert first.returncode == 0, first.stderr
        again = synthkd(*args, cache=tmp_path / "cache")
        assert again.returncode == 0, again.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["corpus"] == f"{uri}/corpus" and summary["corpus_rows"] > 0
    rerun = json.loads(again.stdout.strip().splitlines()[-1])
    assert rerun["records"] == 0 and rerun["corpus_rows"] == summary["corpus_rows"]
    rows = CorpusStore(f"{uri}/corpus").read()
    assert rows.num_rows == summary["corpus_rows"] == len(set(rows["id"].to_pylist()))
    assert not Path(ROOT / "s3:").exists() and not (tmp_path / "s3:").exists()
    assert_no_secret(s3, "generated", first.stdout, first.stderr, again.stdout)


def _start_run(recipe: Path, uri: str, teacher: str, cache: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(SYNTHKD_CACHE=str(cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "synthkd", "run", str(recipe), "--out", uri]
    return subprocess.Popen(
        [*command, "--teacher", teacher, "--rounds", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _stop_orphans(home: Path) -> None:
    """The killed run's ephemeral Prefect server runs in a session of its own: stop it."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PREFECT_HOME={home}/.prefect".encode() in environ:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two whole runs (the killed one and its resumption)
def test_run_on_s3_survives_a_kill_and_resumes_from_the_store_alone(s3, tmp_path):
    recipe = labelled_recipe(tmp_path, per_label=8)
    set_loop(recipe, "{patience: 5}")
    uri = "s3://synthkd/runs/news"
    cache = tmp_path / "cache"
    folder = RunFolder.open(uri)
    with FaultyOpenAIServer(answer=answer) as server:
        run = _start_run(recipe, uri, teacher_spec(server), cache)
        deadline = time.monotonic() + 900
        while "metrics.json" not in objects(s3, "runs/news") and run.poll() is None:
            assert time.monotonic() < deadline, "round 0 never reached the store"
            time.sleep(1)
        os.killpg(run.pid, signal.SIGKILL)  # killed in round 1, as a preempted node is
        killed_output = run.communicate()[0]
        _stop_orphans(folder.local)
        assert run.returncode == -signal.SIGKILL, killed_output[-3000:]
        round0 = json.loads(objects(s3, "runs/news")["metrics.json"])
        assert [row["round"] for row in round0] == [0]

        # another machine: the working copy is gone, only the store is left
        import shutil

        shutil.rmtree(folder.local)
        resumed = synthkd(
            "run", recipe, "--out", uri, "--teacher", teacher_spec(server), "--rounds", "2",
            cache=cache, timeout=1500,
        )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stored = objects(s3, "runs/news")
    metrics = json.loads(stored["metrics.json"])
    assert [row["round"] for row in metrics] == [0, 1]
    # round 0 came back from Prefect's results in the store: its figures, timings included
    same = ("stage_seconds", "generated", "accepted", "val_accuracy", "val_macro_f1")
    assert {k: metrics[0].get(k) for k in same} == {k: round0[0].get(k) for k in same}
    summary = json.loads(stored["summary.json"])
    assert summary["run_dir"] == uri
    # student.json: every shipped student kind has it (the loop's, or the CV winner)
    for name in ("report.md", "critic/README.md", "student/student.json", "run.log"):
        assert any(key == name or key.startswith(name) for key in stored), name
    corpus = CorpusStore(f"{uri}/corpus").read()
    rounds = set(corpus["round"].to_pylist())
    assert {0, 1} <= rounds, "appends across rounds"
    assert corpus.num_rows == len(set(corpus["id"].to_pylist())), "no row written twice"
    assert f"report: {uri}/report.md" in resumed.stdout
    assert not Path(ROOT / "s3:").exists()
    assert_no_secret(s3, "runs/news", resumed.stdout, resumed.stderr, killed_output)
    assert_no_secret(s3, "runs/news", folder=folder.local)


def test_credentials_come_from_the_environment_and_bad_schemes_are_one_line(monkeypatch):
    from synthkd.data import storage_options
    from synthkd.errors import SynthkdError

    for key in ("AWS_S3_ALLOW_UNSAFE_RENAME", "AWS_S3_LOCKING_PROVIDER", "AWS_CONDITIONAL_PUT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("SYNTHKD_STORAGE_BLOCK", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    options = storage_options("s3://bucket/run")
    assert options["AWS_SECRET_ACCESS_KEY"] == SECRET and options["AWS_REGION"] == "eu-west-1"
    assert options["AWS_ALLOW_HTTP"] == "true" and options["AWS_CONDITIONAL_PUT"] == "etag"
    assert storage_options("/tmp/run") is None and storage_options("file:///tmp/run") is None
    folder = RunFolder.open("file:///tmp/some/run")
    assert not folder.remote and folder.local == Path("/tmp/some/run")
    with pytest.raises(SynthkdError, match="unsupported storage URI 'ftp://host/run'"):
        RunFolder.open("ftp://host/run")
