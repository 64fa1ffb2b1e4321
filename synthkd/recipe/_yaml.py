"""Reading a recipe's YAML as a user file: bounded, and every node's line kept.

Nesting depth, expanded size (aliases) and file size are capped before anything walks
the tree, so a billion-laughs alias bomb or 5,000 nested brackets is one line, at once.
The composed node tree maps a pydantic error's field path back to its line.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from synthkd.config import problem
from synthkd.errors import SynthkdError


class Located:
    """The YAML node tree, to map a field path to the line it was written on."""

    def __init__(self, root: yaml.Node):
        self.root = root

    def node(self, loc: tuple[Any, ...]) -> yaml.Node:
        node = self.root
        for part in loc:
            child = self._child(node, part)
            if child is None:
                continue  # a union tag (e.g. the task's kind) or a missing key: stay put
            node = child
        return node

    @staticmethod
    def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    return value
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            return node.value[part]
        return None

    def key_node(self, loc: tuple[Any, ...]) -> yaml.Node:
        """The key's own node for an unknown key (so the line is the key's line)."""
        parent = self.node(loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for key, _ in parent.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(loc[-1]):
                    return key
        return parent

    def line(self, loc: tuple[Any, ...], *, key: bool = False) -> int:
        node = self.key_node(loc) if key else self.node(loc)
        return node.start_mark.line + 1


def _field_name(loc: tuple[Any, ...], data: Any) -> str:
    """Dotted field path without pydantic's union tags."""
    parts: list[str] = []
    node = data
    for part in loc:
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and part < len(node)
        ):
            node = node[part]
        elif isinstance(node, dict) and node.get("kind") == part:
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[") or "recipe"


MAX_RECIPE_BYTES = 1024 * 1024
"""Largest recipe file read (a real one is a few KiB); the data goes in the files it names."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a recipe may have (a real one has about 5)."""
MAX_NODES = 100_000
"""Most values a recipe may hold once aliases are expanded (a real one has a few hundred);
this is what stops a billion-laughs alias bomb before anything walks the expanded tree."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing deep nesting while it scans: before the scanner's
    look-ahead (quadratic in flow depth) and the recursive composer can run away."""

    where = "recipe"

    def _refuse_deeper(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            line = self.get_mark().line + 1
            raise SynthkdError(f"{self.where}:{line}: nested deeper than {MAX_DEPTH} levels")

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 (PyYAML's name)
        self._refuse_deeper(self.flow_level + 1)
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column: int) -> bool:
        self._refuse_deeper(len(self.indents) + 1)
        return super().add_indent(column)


def _check_nodes(root: yaml.Node, where: str) -> None:
    """Duplicate keys and the expanded size, visiting each node once (aliases share nodes)."""
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not done:
            if id(node) in entered:
                line = node.start_mark.line + 1
                raise SynthkdError(f"{where}:{line}: an alias refers to a value that holds it")
            entered.add(id(node))
            if isinstance(node, yaml.MappingNode):
                _check_duplicate_keys(node, where)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in children)
        if sizes[id(node)] > MAX_NODES:
            line = node.start_mark.line + 1
            raise SynthkdError(
                f"{where}:{line}: more than {MAX_NODES} values once aliases are expanded"
            )


def _check_duplicate_keys(node: yaml.MappingNode, where: str) -> None:
    seen: set[str] = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode):
            if key.value in seen:
                raise SynthkdError(
                    f"{where}:{key.start_mark.line + 1}: key {key.value!r} appears twice"
                )
            seen.add(key.value)


def compose(text: str, where: str) -> tuple[yaml.Node, Any]:
    loader = None
    try:
        loader = _BoundedLoader(text)
        loader.where = where
        node = loader.get_single_node()
        if node is None:
            raise SynthkdError(f"{where}:1: the recipe is empty")
        _check_nodes(node, where)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(str(exc.problem or exc).split())
        raise SynthkdError(f"{where}:{line}: not valid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise SynthkdError(
            f"{where}:{line}: not valid YAML: character {char!r} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        raise SynthkdError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise SynthkdError(f"{where}:1: a recipe is a YAML mapping (name:, task:, teacher: ...)")
    return node, data


def validation_message(exc: ValidationError, located: Located, data: Any, where: str) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    kind = first["type"]
    field = _field_name(loc, data)
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        line = located.line(loc, key=True)
        message = "unknown field"
    elif kind in ("missing", "missing_argument"):
        line = located.line(loc[:-1])
        message = "required field is missing"
    elif kind == "union_tag_invalid":
        line = located.line((*loc, "kind"))
        message = f"unknown task kind; expected one of {first['ctx']['expected_tags']}"
        field = f"{field}.kind"
    elif kind == "union_tag_not_found":
        line = located.line(loc)
        message = "a task needs a kind: labelled, commonsense, document_kg or annotate"
        field = f"{field}.kind"
    else:
        line = located.line(loc)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return f"{where}:{line}: {field}{problem(first)}{more}"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}:{line}: {field}: {message}{more}"
