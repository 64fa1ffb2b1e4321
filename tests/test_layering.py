"""The house rules of the layout, checked on the source (docs/architecture.md).

The CLI reaches the rooms only through the one wiring layer, so a recipe behaves the
same through `synthkd run` and through the stage commands.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "synthkd"
ROOMS = ("synthkd.generators", "synthkd.critics", "synthkd.training")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_commands_reach_the_rooms_only_through_stages_or_flows():
    offenders = {
        f"{path.name}: {name}"
        for path in (PACKAGE / "commands").glob("*.py")
        for name in _imports(path)
        if name.startswith(ROOMS)
    }
    assert not offenders, sorted(offenders)


def test_no_module_is_much_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 420
    }
    assert not long, long
