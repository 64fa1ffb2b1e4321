"""Dialects of OpenAI-compatible servers: how each takes a JSON schema, how logprobs come back.

The server's flavour is read once from its /v1/models listing (`owned_by`):
llama-cpp-python's server says "me", llama.cpp's `llama-server` says "llamacpp",
vLLM says "vllm"; anything else is treated as OpenAI proper.
"""

from __future__ import annotations

import json
from typing import Any


def flavour_of(owned_by: list[str | None]) -> str:
    owners = {str(o).lower() for o in owned_by if o}
    if "me" in owners:
        return "llama-cpp-python"
    if "llamacpp" in owners or "llama.cpp" in owners:
        return "llama-server"
    if "vllm" in owners:
        return "vllm"
    return "openai"


def response_format_for(flavour: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Chat `response_format` constraining the answer to `schema`."""
    if flavour == "llama-cpp-python":
        return {"type": "json_object", "schema": schema}
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def completion_schema_body(flavour: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Extra body fields that constrain a /v1/completions answer to `schema`.

    OpenAI's completions endpoint has no such field; vLLM reads `response_format`,
    llama-server `json_schema`, llama-cpp-python's server a GBNF `grammar`.
    """
    if flavour == "llama-cpp-python":
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        return {"grammar": json_schema_to_gbnf(json.dumps(schema))}
    if flavour == "llama-server":
        return {"json_schema": schema}
    return {"response_format": response_format_for(flavour, schema)}


def label_logprob(logprobs: Any, prefix_chars: int, label_chars: int) -> float | None:
    """Sum of the echoed prompt-token logprobs that cover the label's characters.

    A token counts when it ends after the prefix and starts before the label's end (a
    token straddling the boundary carries part of the label). None when the server
    sent no prompt logprobs.
    """
    if logprobs is None:
        return None
    tokens = getattr(logprobs, "tokens", None)
    values = getattr(logprobs, "token_logprobs", None)
    offsets = getattr(logprobs, "text_offset", None)
    if not tokens or not values or not offsets:
        return None
    end = prefix_chars + label_chars
    total, seen = 0.0, False
    for token, value, offset in zip(tokens, values, offsets, strict=False):
        if offset >= end:
            break
        if offset + len(token) > prefix_chars and value is not None:
            total += value
            seen = True
    return total if seen else None
