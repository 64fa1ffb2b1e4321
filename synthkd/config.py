"""How every room declares its settings: one dataclass each, one place per default and bound.

A room's config is a plain dataclass whose fields carry their default, their bounds
(`Annotated[int, Field(ge=1)]`) and a help line (`field(metadata={"help": ...})`), as
peft's `LoraConfig` does. `@settings("critic")` makes it validate on construction and
refuse unknown names; the recipe uses these very classes as its sections, so a value
means the same thing in YAML and in Python and is checked once, in one place.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, TypeVar

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from synthkd.errors import SynthkdError

T = TypeVar("T")


def one_line(exc: ValidationError, section: str) -> str:
    """The first problem of a ValidationError as `section.field: message`."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"])
    name = f"{section}.{loc}" if loc else section
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{name}{problem(first)}{more}"


_BOUNDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def problem(error: Any) -> str:
    """One pydantic error as the words after a field name (`: unknown setting`, ` must be
    at least 1`)."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return ": unknown setting"
    if kind in ("missing", "missing_argument"):
        return ": required setting is missing"
    for bound, words in _BOUNDS.items():
        if bound in context and kind.endswith(("_than", "_than_equal")):
            return f" must be {words} {context[bound]}, not {error.get('input')!r}"
    return ": " + error["msg"].removeprefix("Value error, ")


class Settings:
    """What every config offers besides its fields: plain-dict views.

    `model_dump()` keeps call sites written for the recipe's old pydantic sections
    (`CriticConfig(**recipe.critic.model_dump())`) working.
    """

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def model_dump(self, *, exclude: set[str] | None = None, **_: Any) -> dict[str, Any]:
        data = self.to_dict()
        return {k: v for k, v in data.items() if k not in (exclude or ())}

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> its help line (for docs and CLI help)."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def settings(section: str, *, frozen: bool = False):
    """Class decorator: a validating dataclass; a bad value is one SynthkdError line.

    Validation inside the recipe goes through pydantic directly (so the recipe loader
    can name the YAML line); constructing one in Python gets `section.field: problem`.
    """

    def wrap(cls: type[T]) -> type[T]:
        built = _pydantic_dataclass(cls, config=ConfigDict(extra="forbid"), frozen=frozen)
        init = built.__init__

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as exc:
                raise SynthkdError(one_line(exc, section)) from None

        built.__init__ = __init__  # type: ignore[method-assign]
        return built

    return wrap


__all__ = ["Settings", "one_line", "problem", "settings"]
