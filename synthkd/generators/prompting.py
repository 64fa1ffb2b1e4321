"""Prompt templates: Jinja2 files rendered in a sandbox, hashed into every record's lineage.

Two prompt styles exist because teachers differ: a base model (the embedded Gemma 3
270M) only continues documents, so it gets few-shot "completion" prompts; a chat model
follows instructions, so it gets "chat" prompts with a JSON schema. Each task has one
template per style, `<name>.completion.jinja` and `<name>.chat.jinja`; a chat template
has a `system` and a `user` block. A recipe may point at its own template directory,
searched before ours. Values (seed texts, documents) go in as variables, never as
template source, so text like `{{ 7*7 }}` in a document stays literal.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from synthkd.errors import SynthkdError

PromptStyle = Literal["completion", "chat"]
PACKAGE_TEMPLATES = Path(__file__).parent / "templates"

_CHAT_MODEL_HINTS = re.compile(
    r"(instruct|chat|-it\b|-it-|gpt-|^o\d|claude|gemini|mistral-small|qwen.*-(?!base))", re.I
)


def prompt_style(teacher: Any, configured: str = "auto") -> PromptStyle:
    """Which prompt style a teacher gets: the recipe's choice, the teacher's, or a guess.

    The guess: llama.cpp and vLLM models are base models unless their name says
    instruct/chat/-it; models behind an OpenAI-compatible API are chat models unless
    their name looks like a base model we ship (gemma-3-270m).
    """
    if configured in ("completion", "chat"):
        return configured  # type: ignore[return-value]
    own = getattr(teacher, "prompt_style", None)
    if own in ("completion", "chat"):
        return own
    is_chat = getattr(teacher, "is_chat", None)
    if isinstance(is_chat, bool):
        return "chat" if is_chat else "completion"
    backend = str(getattr(teacher, "backend", ""))
    model = str(getattr(teacher, "model", ""))
    if _CHAT_MODEL_HINTS.search(model):
        return "chat"
    if backend == "openai" and "gemma-3-270m" not in model.lower():
        return "chat"
    return "completion"


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered template: a prompt (completion style) or messages (chat style)."""

    template: str
    template_hash: str
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None


class Templates:
    """The template set of one run: the user's directory first, then the package's."""

    def __init__(self, user_dir: str | Path | None = None):
        search = [str(user_dir)] if user_dir else []
        search.append(str(PACKAGE_TEMPLATES))
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._hashes: dict[str, str] = {}

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateNotFound:
            raise SynthkdError(f"prompt template not found: {name}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise SynthkdError(
                f"prompt template {exc.filename or name}:{exc.lineno}: {exc.message}"
            ) from None

    def template_hash(self, name: str) -> str:
        """Hash of the template's source: a changed template never looks like the old one."""
        if name not in self._hashes:
            try:
                source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
            except jinja2.TemplateNotFound:
                raise SynthkdError(f"prompt template not found: {name}") from None
            self._hashes[name] = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
        return self._hashes[name]

    def render(self, task: str, style: PromptStyle, variables: dict[str, Any]) -> RenderedPrompt:
        name = f"{task}.{style}.jinja"
        template = self._template(name)
        digest = self.template_hash(name)
        try:
            if style == "completion":
                return RenderedPrompt(name, digest, prompt=template.render(variables))
            context = template.new_context(dict(variables))
            messages = []
            for role in ("system", "user"):
                block = template.blocks.get(role)
                if block is None:
                    if role == "user":
                        raise SynthkdError(f"prompt template {name} has no user block")
                    continue
                content = "".join(block(context)).strip()
                if content:
                    messages.append({"role": role, "content": content})
            return RenderedPrompt(name, digest, messages=tuple(messages))
        except jinja2.UndefinedError as exc:
            raise SynthkdError(f"prompt template {name}: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise SynthkdError(f"prompt template {name}: unsafe operation ({exc})") from None
        except jinja2.TemplateNotFound as exc:
            raise SynthkdError(
                f"prompt template {name}: includes {exc.name!r}, which is not a template in "
                "the template folders"
            ) from None
        except jinja2.TemplateError as exc:
            raise SynthkdError(f"prompt template {name}: {' '.join(str(exc).split())}") from None
