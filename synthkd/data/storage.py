"""Run folders and corpora on object storage (s3://, gs://, az://, file://).

The design, in two halves:

- The Delta tables (`corpus/`, `rejects/`) are written straight to the object store by
  deltalake with `storage_options`: every commit is atomic there as it is on a disk.
- Everything else a run writes (critic, students, metrics.json, report.md, summary.json,
  run.log, Prefect's task results) is written by ordinary code into a local working copy
  (`$SYNTHKD_CACHE/runs/<name>-<hash>/`), and `RunFolder.push` uploads what changed after
  each step, one whole object per file (an object store never shows half an object).
  `RunFolder.pull` brings the files back first, so a run killed on one machine resumes
  on another from what was pushed.

Credentials come from the usual environment variables (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_REGION;
GOOGLE_APPLICATION_CREDENTIALS; AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY, ...)
or from a Prefect block named by `SYNTHKD_STORAGE_BLOCK`. They live only in memory: a
run's identity, its files, logs and cards carry the URI and the block's name, never a key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from synthkd.errors import SynthkdError

SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "file")
"""URI schemes a run folder or corpus may use."""
TABLES = ("corpus", "rejects")
"""Folders deltalake writes to the store directly: never pulled or pushed as files."""
_SKIP_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".lock", ".tmp")
"""Prefect's live SQLite database and scratch files: local to one process, never pushed."""

_AWS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ALLOW_HTTP",
    "AWS_S3_ALLOW_UNSAFE_RENAME",
    "AWS_S3_LOCKING_PROVIDER",
    "AWS_CONDITIONAL_PUT",
    "DELTA_DYNAMO_TABLE_NAME",
)
_GCS = ("GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS")
_AZURE = (
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_CLIENT_ID",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_STORAGE_TENANT_ID",
)


def scheme_of(target: str | Path) -> str | None:
    """The URI scheme of `target` (lower case), None for a plain local path."""
    text = str(target)
    if "://" not in text:
        return None
    scheme = text.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise SynthkdError(
            f"unsupported storage URI {text!r}: use a local path or one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    return scheme


def is_remote(target: str | Path) -> bool:
    """True for an object-store URI (file:// and plain paths are local)."""
    return scheme_of(target) not in (None, "file")


def local_of(target: str | Path) -> Path | None:
    """The local folder a plain path or file:// URI names; None for an object store."""
    scheme = scheme_of(target)
    if scheme is None:
        return Path(str(target)).expanduser()
    if scheme == "file":
        return Path(unquote(urlparse(str(target)).path))
    return None


def storage_options(target: str | Path, block: str | None = None) -> dict[str, str] | None:
    """deltalake `storage_options` for `target`: the environment's credentials, then the
    Prefect block's (when named, or `SYNTHKD_STORAGE_BLOCK`); None for local paths."""
    scheme = scheme_of(target)
    if scheme in (None, "file"):
        return None
    env = os.environ
    names = _AWS if scheme in ("s3", "s3a") else _GCS if scheme in ("gs", "gcs") else _AZURE
    options = {name: env[name] for name in names if env.get(name)}
    if scheme in ("s3", "s3a") and "AWS_REGION" not in options and env.get("AWS_DEFAULT_REGION"):
        options["AWS_REGION"] = env["AWS_DEFAULT_REGION"]
    block = block or env.get("SYNTHKD_STORAGE_BLOCK") or None
    if block:
        options.update(block_options(block))
    if scheme in ("s3", "s3a"):
        if options.get("AWS_ENDPOINT_URL", "").startswith("http://"):
            options.setdefault("AWS_ALLOW_HTTP", "true")
        safe = ("AWS_S3_ALLOW_UNSAFE_RENAME", "AWS_S3_LOCKING_PROVIDER", "AWS_CONDITIONAL_PUT")
        if not any(k in options for k in safe):
            # S3 (since 2024), MinIO and R2 refuse a second writer of one log entry
            options["AWS_CONDITIONAL_PUT"] = "etag"
    return options


def block_options(name: str) -> dict[str, str]:
    """Storage options from a Prefect block, named `TYPE/NAME` (e.g. `aws-credentials/prod`,
    or `secret/store` holding a JSON object of options)."""
    try:
        from prefect.blocks.core import Block

        loaded = Block.load(name)
    except Exception as exc:
        raise SynthkdError(
            f"cannot load the Prefect block {name!r}: {type(exc).__name__}"
        ) from None

    def plain(value: Any) -> str | None:
        if value is None:
            return None
        getter = getattr(value, "get_secret_value", None)
        return str(getter() if getter else value)

    if hasattr(loaded, "get") and not hasattr(loaded, "aws_access_key_id"):
        value = loaded.get()  # a Secret block: a dict or a JSON object
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if not isinstance(value, Mapping):
            raise SynthkdError(f"the Prefect block {name!r} does not hold a JSON object")
        return {str(k): str(v) for k, v in value.items()}
    fields = {
        "AWS_ACCESS_KEY_ID": plain(getattr(loaded, "aws_access_key_id", None)),
        "AWS_SECRET_ACCESS_KEY": plain(getattr(loaded, "aws_secret_access_key", None)),
        "AWS_SESSION_TOKEN": plain(getattr(loaded, "aws_session_token", None)),
        "AWS_REGION": plain(getattr(loaded, "region_name", None)),
    }
    client = getattr(loaded, "aws_client_parameters", None)
    fields["AWS_ENDPOINT_URL"] = plain(getattr(client, "endpoint_url", None))
    return {k: v for k, v in fields.items() if v}


def fsspec_filesystem(target: str, options: Mapping[str, str] | None) -> Any:
    """An fsspec filesystem for `target` with the same credentials deltalake gets."""
    import fsspec

    scheme = scheme_of(target) or "file"
    opts = dict(options or {})
    kwargs: dict[str, Any] = {}
    if scheme in ("s3", "s3a"):
        scheme = "s3"
        kwargs = {
            "key": opts.get("AWS_ACCESS_KEY_ID"),
            "secret": opts.get("AWS_SECRET_ACCESS_KEY"),
            "token": opts.get("AWS_SESSION_TOKEN"),
            "endpoint_url": opts.get("AWS_ENDPOINT_URL"),
            "client_kwargs": {"region_name": opts["AWS_REGION"]} if "AWS_REGION" in opts else {},
        }
    elif scheme in ("gs", "gcs"):
        kwargs = {"token": opts.get("GOOGLE_APPLICATION_CREDENTIALS")}
    elif scheme in ("az", "abfs", "abfss"):
        scheme = "abfs"
        kwargs = {
            "account_name": opts.get("AZURE_STORAGE_ACCOUNT_NAME"),
            "account_key": opts.get("AZURE_STORAGE_ACCOUNT_KEY"),
            "sas_token": opts.get("AZURE_STORAGE_SAS_TOKEN"),
            "connection_string": opts.get("AZURE_STORAGE_CONNECTION_STRING"),
        }
    kwargs = {k: v for k, v in kwargs.items() if v not in (None, {})}
    try:
        return fsspec.filesystem(scheme, **kwargs)
    except ImportError:
        package = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs"}.get(scheme, scheme)
        raise SynthkdError(
            f"{target} needs the {package} package: pip install 'synthkd[cloud]'"
        ) from None


def working_copy(uri: str) -> Path:
    """The local folder mirroring the run at `uri`: one per URI, reused by a resumed run."""
    root = os.environ.get("SYNTHKD_WORKDIR")
    if root:
        base = Path(root)
    else:
        cache = os.environ.get("SYNTHKD_CACHE")
        base = (Path(cache) if cache else Path.home() / ".cache" / "synthkd") / "runs"
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "run"
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:12]
    return (base / f"{name}-{digest}").absolute()


@dataclass
class RunFolder:
    """Where a run lives (`uri`) and the local folder its stages write to (`local`).

    For a local run both are the same folder and `pull`/`push` do nothing.
    """

    uri: str
    """The run folder as the user named it: a local path or an object-store URI."""
    local: Path
    """The folder stages write files to: the run folder itself, or its working copy."""
    options: dict[str, str] | None = field(default=None, repr=False)
    """deltalake storage options (credentials): in memory only."""
    _synced: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, target: str | Path, block: str | None = None) -> RunFolder:
        """The run folder at `target` (its working copy made, nothing pulled yet)."""
        local = local_of(target)
        if local is not None:
            local = local.absolute()
            return cls(str(local), local)
        uri = str(target).rstrip("/")
        return cls(uri, working_copy(uri), storage_options(uri, block))

    @property
    def remote(self) -> bool:
        return self.local_uri is None

    @property
    def local_uri(self) -> str | None:
        return str(self.local) if str(self.local) == self.uri else None

    def join(self, name: str) -> str:
        """The URI (or path) of `name` inside the run folder."""
        return f"{self.uri}/{name}" if self.remote else str(self.local / name)

    def _fs(self) -> tuple[Any, str]:
        fs = fsspec_filesystem(self.uri, self.options)
        return fs, fs._strip_protocol(self.uri).rstrip("/")

    @staticmethod
    def _skipped(rel: str) -> bool:
        top = rel.split("/", 1)[0]
        hidden = "/." in f"/{rel}" and top != ".prefect"  # e.g. .student.tmp staging
        return top in TABLES or rel.endswith(_SKIP_SUFFIXES) or hidden

    def pull(self) -> int:
        """Download the run's files missing or different here; returns how many came."""
        if not self.remote:
            return 0
        fs, root = self._fs()
        fs.invalidate_cache()  # fsspec caches listings per process: see what others pushed
        try:
            found = fs.find(root, detail=True)
        except FileNotFoundError:
            found = {}
        except Exception as exc:
            raise SynthkdError(f"cannot read {self.uri}: {_short(exc)}") from None
        pulled = 0
        for path, info in found.items():
            rel = path[len(root) :].lstrip("/")
            if not rel or self._skipped(rel) or info.get("type") == "directory":
                continue
            target = self.local / rel
            size = int(info.get("size") or 0)
            if not (target.is_file() and target.stat().st_size == size):
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                fs.get_file(path, str(partial))
                os.replace(partial, target)
                pulled += 1
            stat = target.stat()
            self._synced[rel] = (stat.st_size, stat.st_mtime_ns)
        return pulled

    def push(self) -> int:
        """Upload the files changed here since the last push or pull; returns how many.

        Each file is one object, put whole; metrics.json and summary.json go last, so a
        reader who sees them sees the files they name.
        """
        if not self.remote or not self.local.is_dir():
            return 0
        changed = []
        for path in sorted(p for p in self.local.rglob("*") if p.is_file()):
            rel = path.relative_to(self.local).as_posix()
            if self._skipped(rel) or rel.endswith(".part"):
                continue
            stat = path.stat()
            if self._synced.get(rel) != (stat.st_size, stat.st_mtime_ns):
                changed.append((rel, path, (stat.st_size, stat.st_mtime_ns)))
        if not changed:
            return 0
        last = ("metrics.json", "summary.json")
        changed.sort(key=lambda item: item[0] in last)
        fs, root = self._fs()
        try:
            for rel, path, stamp in changed:
                fs.put_file(str(path), f"{root}/{rel}")
                self._synced[rel] = stamp
        except Exception as exc:
            raise SynthkdError(f"could not upload to {self.uri}: {_short(exc)}") from None
        return len(changed)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
