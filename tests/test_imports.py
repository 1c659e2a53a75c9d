"""The package's import graph, imports inside functions included: no cycles, and no module imports from
a layer above its own (the NumPy engine knows no data, models or report; loading a model imports no
training code)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "srlib"

#: each module's layer, lowest first; a module may import from its own layer and those below
LAYERS = [
    {"srlib", "srlib.errors", "srlib.settings", "srlib.files", "srlib.paths", "srlib.display"},
    {"srlib.nn"},
    {"srlib.data"},
    {"srlib.recipe", "srlib.checkpoint", "srlib.legacy"},
    {"srlib.model", "srlib.onnx_export", "srlib.evaluation"},
    {"srlib.train"},
    {"srlib.report"},
    {"srlib.cli", "srlib.__main__"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The srlib modules ``path`` imports, anywhere in it (inside functions too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # "from . import shifted" names a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).is_file() else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "srlib" or m.startswith("srlib.")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    for rank, members in enumerate(LAYERS):
        if any(module == m or (m != "srlib" and module.startswith(m + ".")) for m in members):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_imports.py: give it one")


def test_no_module_imports_from_a_layer_above_it():
    upward = [f"{a} -> {b}" for a, targets in graph().items() for b in targets if layer(b) > layer(a)]
    assert not upward, upward


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:  # on the path being walked: a cycle
                path = stack + [node]
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt in edges and state.get(nxt) is None:
                visit(nxt, stack + [node])
        state[node] = 2

    for start in sorted(edges):
        if state.get(start) is None:
            visit(start, [])
    assert not cycles, cycles


def test_loading_a_model_imports_no_training_or_report_code():
    code = ("import sys; from srlib.model import SRModel; SRModel.shipped('fast'); "
            "print(sorted(m for m in sys.modules if m.startswith(('srlib.train', 'srlib.report', 'srlib.cli'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == "[]"
