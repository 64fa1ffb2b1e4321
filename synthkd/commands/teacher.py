"""CLI commands: `synthkd teacher sample` and `synthkd teacher serve`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from synthkd.errors import SynthkdError

teacher_app = typer.Typer(
    help="Ask a teacher LLM directly: sample completions, or serve the embedded model.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(teacher_app, name="teacher")


@teacher_app.command("sample")
def sample(
    prompt: str = typer.Option(
        ..., "--prompt", "-p", help="Prompt text (the user message with --chat)."
    ),
    teacher: str = typer.Option(
        None, "--teacher", "-t", help="Teacher spec; default llamacpp:gemma-3-270m (embedded)."
    ),
    n: int = typer.Option(1, "-n", "--n", help="Number of samples."),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Completion budget per sample."),
    temperature: float = typer.Option(
        0.8, "--temperature", help="Sampling temperature (0: greedy)."
    ),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling mass."),
    seed: int = typer.Option(None, "--seed", help="Base seed; sample i uses seed + i."),
    stop: list[str] = typer.Option(None, "--stop", help="Stop string (repeatable)."),
    chat: bool = typer.Option(False, "--chat", help="Send the prompt as a chat user message."),
    schema: Path = typer.Option(None, "--schema", help="JSON schema file constraining the output."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Bypass the response cache."),
    api_key_env: str = typer.Option(
        None, "--api-key-env", help="Environment variable holding the API key (openai backend)."
    ),
) -> None:
    """Sample completions from a teacher and print them (JSONL with --json)."""
    from synthkd import stages

    if not prompt.strip():
        raise SynthkdError("--prompt is empty")
    if n < 1:
        raise SynthkdError(f"-n must be at least 1, got {n}")
    if max_tokens < 1:
        raise SynthkdError(f"--max-tokens must be at least 1, got {max_tokens}")
    if temperature < 0:
        raise SynthkdError(f"--temperature must be >= 0, got {temperature}")
    json_schema = _read_schema(schema) if schema else None
    request = stages.teacher_request(
        prompt,
        chat=chat,
        n=n,
        json_schema=json_schema,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=tuple(stop or ()),
        seed=seed,
    )
    options = {"cache": not no_cache}
    if api_key_env:
        options["api_key_env"] = api_key_env
    built = stages.open_teacher(teacher, **options)
    err = Console(stderr=True)

    async def run():
        try:
            with Progress(
                TextColumn(f"[bold]{built.backend}:{built.model}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                disable=not err.is_terminal,
            ) as bar:
                task = bar.add_task("sampling", total=n)
                return await built.generate([request], progress=lambda k: bar.advance(task, k))
        finally:
            await built.aclose()

    response = asyncio.run(run())[0]
    for completion in response.completions:
        if as_json:
            row = {
                "index": completion.index,
                "text": completion.text,
                "finish_reason": completion.finish_reason,
                "cached": completion.cached,
                "usage": {
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                },
            }
            print(json.dumps(row, ensure_ascii=False), flush=True)
        else:
            note = f"{completion.finish_reason}, {completion.completion_tokens} tokens"
            note += ", cached" if completion.cached else ""
            print(f"--- sample {completion.index} ({note})")
            print(completion.text.strip("\n"), flush=True)
    for error in response.errors:
        if as_json:
            print(json.dumps({"index": error.index, "error": error.reason}), flush=True)
        else:
            print(f"--- sample {error.index} failed: {error.reason}", flush=True)
    usage = built.usage
    truncated = sum(c.finish_reason == "length" for c in response.completions)
    err.print(
        f"[dim]{built.backend}:{built.model}: {usage.requests} teacher calls, {usage.cache_hits} cached,"
        f" {usage.prompt_tokens}+{usage.completion_tokens} tokens, {usage.retries} retries,"
        f" {truncated} cut at --max-tokens, {len(response.errors)} failed, {usage.seconds:.1f}s[/dim]",
        highlight=False,
        soft_wrap=True,
    )
    if not response.completions:
        raise typer.Exit(1)


def _read_schema(path: Path) -> dict:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SynthkdError(f"the schema file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise SynthkdError(f"the schema file {path} is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise SynthkdError(f"the schema file {path} must hold a JSON object")
    return schema


@teacher_app.command("serve")
def serve(
    model: str = typer.Option(
        "llamacpp:gemma-3-270m",
        "--model",
        "-m",
        help="llamacpp:NAME, a model name, or a .gguf path.",
    ),
    port: int = typer.Option(8000, "--port", help="Port on 127.0.0.1 (0: any free port)."),
    n_ctx: int = typer.Option(2048, "--n-ctx", help="Context window in tokens."),
    threads: int = typer.Option(None, "--threads", help="CPU threads (default: every core)."),
    logprobs: bool = typer.Option(
        False,
        "--logprobs",
        help="Keep logits of every token (needed for echo logprobs; RAM heavy).",
    ),
) -> None:
    """Serve the embedded (or a .gguf) model on 127.0.0.1 with llama_cpp.server (foreground)."""
    from synthkd import stages

    spec = model.split(":", 1)[1] if model.startswith("llamacpp:") else model
    name, path = stages.local_model(spec)
    if port == 0:
        port = _free_port()
    command = serve_command(path, name, port, n_ctx=n_ctx, threads=threads, logprobs=logprobs)
    base_url = f"http://127.0.0.1:{port}/v1"
    print(f"serving {name} at {base_url}", flush=True)
    print(f"use: --teacher openai:{name}@{base_url}", flush=True)
    if os.name == "posix":  # become the server: signals and exit codes go straight to it
        os.execv(command[0], command)
    process = subprocess.Popen(command)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        code = process.wait()
    raise typer.Exit(code)


def serve_command(
    path: Path,
    name: str,
    port: int,
    *,
    n_ctx: int = 2048,
    threads: int | None = None,
    logprobs: bool = False,
) -> list[str]:
    """The `python -m llama_cpp.server` command line serving `path` as model `name`."""
    threads = threads or os.cpu_count() or 1
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path),
        "--model_alias", name,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--logits_all", str(logprobs),
        "--verbose", "False",
    ]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
