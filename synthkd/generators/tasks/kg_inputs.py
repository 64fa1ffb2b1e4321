"""A document-KG task's inputs and answers: the documents (UTF-8 text, size-limited), the
seed KG shots, fact lines, entity mentions and JSON a chat teacher almost wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from synthkd.data import read_rows
from synthkd.data.io import MAX_FILE_BYTES
from synthkd.errors import SynthkdError
from synthkd.generators.tasks.base import squash

_FACT = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])?\s*(.+)$")
_QUOTES = "\"'`\u2018\u2019\u201c\u201d "


def read_text(path: Path) -> tuple[str, str | None]:
    """(text, None) or ("", reason) for a file that is not UTF-8 text."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SynthkdError(
                f"documents: {path}: {size / 1024**2:.0f} MiB is over the "
                f"{MAX_FILE_BYTES / 1024**2:.0f} MiB limit (SYNTHKD_MAX_FILE_BYTES)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise SynthkdError(f"documents: cannot read {path} ({exc.strerror or exc})") from None
    if b"\x00" in data[:8192]:
        return "", "binary_file"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return "", "not_utf8_text"


def unique_id(path: Path, taken: set[str]) -> str:
    base = path.stem
    candidate, i = base, 2
    while candidate in taken:
        candidate, i = f"{base}-{i}", i + 1
    return candidate


def read_shots(path: str) -> list[dict[str, Any]]:
    shots = []
    for number, row in enumerate(read_rows(path, "seed KG file"), 1):
        text = row.get("text", row.get("chunk"))
        triples = row.get("triples")
        if not isinstance(text, str) or not isinstance(triples, list):
            raise SynthkdError(
                f"seed KG file {path}:{number}: needs text (or chunk) and a triples list"
            )
        facts = []
        for t in triples:
            if not isinstance(t, dict) or not all(
                isinstance(t.get(k), str) for k in ("subject", "predicate", "object", "quote")
            ):
                raise SynthkdError(
                    f"seed KG file {path}:{number}: each triple needs subject, predicate, object, quote"
                )
            facts.append({k: squash(t[k]) for k in ("subject", "predicate", "object", "quote")})
        entities = row.get("entities")
        if not isinstance(entities, list):
            entities = list(dict.fromkeys(x for f in facts for x in (f["subject"], f["object"])))
        shots.append(
            {"text": squash(text), "entities": [squash(str(e)) for e in entities], "triples": facts}
        )
    return shots


def relation_key(predicate: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", predicate.casefold()).split())


def repair_object(text: str) -> dict[str, Any] | None:
    """A JSON object a chat teacher almost wrote: prose around it, trailing commas, or cut
    off inside the last item (closed after the last complete one). None if still not JSON;
    what it yields is checked like any answer (grounding is not relaxed)."""
    start = text.find("{")
    if start < 0:
        return None
    body = re.sub(r",\s*([}\]])", r"\1", text[start:])
    ends = [i + 1 for i, ch in enumerate(body) if ch in '}]"'][::-1][:64]  # bounded work
    for end in ends:
        head = body[:end]
        stack = []
        in_string = escaped = False
        for ch in head:
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
                continue
            if ch == '"':
                in_string = True
            elif ch in "{[":
                stack.append("}" if ch == "{" else "]")
            elif ch in "}]" and stack:
                stack.pop()
        if in_string:
            continue
        try:
            value = json.loads(re.sub(r",\s*$", "", head) + "".join(reversed(stack)))
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


def split_names(names: list[str], chunk: str) -> list[str]:
    """Entity names as listed; "A, B" is two names when the chunk mentions each part but
    not the whole (a base model lists with commas as often as with semicolons)."""
    out = []
    for name in (squash(n) for n in names):
        parts = [squash(p) for p in name.split(",") if squash(p)]
        if (
            len(parts) > 1
            and not mentioned(name, chunk)
            and all(mentioned(p, chunk) for p in parts)
        ):
            out.extend(parts)
        elif name:
            out.append(name)
    return out


def fact_line(line: str) -> dict[str, str] | str:
    match = _FACT.match(line)
    parts = [p.strip() for p in match.group(1).split("|", 3)] if match else []
    if len(parts) == 3 and re.search(r';\s*"', parts[2]):  # object; "quote": a slipped separator
        obj, _, quote = parts[2].partition(";")
        parts = [parts[0], parts[1], obj.strip(), quote.strip()]
    if len(parts) == 3:  # a field left out: a fact, but an incomplete one
        return dict(zip(("subject", "predicate", "object", "quote"), [*parts, ""], strict=True))
    if len(parts) != 4:
        return ""
    return dict(zip(("subject", "predicate", "object", "quote"), parts, strict=True))


def mentioned(name: str, chunk: str) -> bool:
    name = re.sub(r"['\u2019]s$", "", squash(name).strip(_QUOTES + ".,;:"))  # "Aldery's"
    needle = re.escape(squash(name).strip(_QUOTES + ".,;:").casefold())
    return (
        bool(needle) and re.search(rf"(?<!\w){needle}(?!\w)", squash(chunk).casefold()) is not None
    )
