"""The house stays one-way: connectors < tasks < flows < kbflow, and no module imports itself back in a circle."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ["connectors", "tasks", "flows", "kbflow"]  # each may import the floors before it, never one after


def imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its file (lazy imports inside functions too)."""
    found = {}
    for floor in FLOORS:
        for path in (ROOT / floor).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            names = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
            found[module] = {n for n in names if n.split(".")[0] in FLOORS}
    return {m: {n for n in names if n in found and n != m} for m, names in found.items()}


@pytest.mark.unit
def test_no_floor_imports_one_above_it():
    upward = [
        f"{module} imports {name}"
        for module, names in imports().items()
        for name in names
        if FLOORS.index(name.split(".")[0]) > FLOORS.index(module.split(".")[0])
    ]
    assert upward == []


@pytest.mark.unit
def test_no_circle_of_imports():
    graph = imports()
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for name in sorted(graph[module]):
            if name.startswith(module + "."):
                continue  # a package's __init__ naming its own submodule is not a circle
            if state.get(name) == "open":
                circles.append(" -> ".join(path[path.index(name) :] + [name]))
            elif name not in state:
                visit(name, path + [name])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []
