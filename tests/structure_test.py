"""The package's shape: small modules and functions, a curated public surface, no private names across modules.

Read from the source with `ast` (nothing is imported). The limits are the ones docs/architecture.md states.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("imbal_keras", "flags")
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 8
# Public signatures kept wider on purpose, as Keras's own constructors and `fit` are: every parameter past the
# first few is keyword-only, documented one to one in the docstring and the guide named.
WIDE_SIGNATURES: dict[str, str] = {
    "imbal_keras/callbacks/gradient_noise.py:__init__": "GradientNoise's options (docs/diagnostics.md)",
    "imbal_keras/data/streaming.py:class_sampled": "the class-aware sampler's options (docs/pipelines.md)",
    "imbal_keras/data/tabular.py:from_frame": "a table's column roles (docs/datasets.md)",
    "imbal_keras/diagnostics/exact_mode.py:exact": "the exact mode's options (docs/diagnostics.md)",
    "imbal_keras/grid/comparison.py:compare": "compare()'s grid options (docs/models.md)",
    "imbal_keras/models.py:build": "the built-in models' options (docs/models.md)",
}


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            found += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files if f.endswith(".py")]
    return sorted(found)


def _tree(path: str) -> tuple[ast.Module, list[str]]:
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    return ast.parse(text), text.splitlines()


def _code_lines(node: ast.FunctionDef, lines: list[str]) -> int:
    """Lines of code in a function's body: no docstring, blank or comment-only lines."""
    body = node.body
    first = body[0]
    is_docstring = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
    if is_docstring and isinstance(first.value.value, str):
        if len(body) == 1:
            return 0
        first = body[1]
    text = lines[first.lineno - 1 : node.end_lineno]
    return sum(1 for line in text if line.strip() and not line.strip().startswith("#"))


def _parameters(node: ast.FunctionDef) -> int:
    args = node.args
    names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


@pytest.mark.parametrize("path", _modules())
def test_modules_and_functions_stay_small(path):
    tree, lines = _tree(path)
    assert len(lines) <= MAX_MODULE_LINES, f"{path} has {len(lines)} lines (at most {MAX_MODULE_LINES})"
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        where = f"{path}:{node.lineno} {node.name}"
        code = _code_lines(node, lines)
        assert code <= MAX_FUNCTION_LINES, f"{where} has {code} lines of code (at most {MAX_FUNCTION_LINES})"
        if f"{path}:{node.name}" not in WIDE_SIGNATURES:
            count = _parameters(node)
            assert count <= MAX_PARAMETERS, f"{where} takes {count} parameters (at most {MAX_PARAMETERS})"


@pytest.mark.parametrize("path", [p for p in _modules() if p.startswith("imbal_keras")])
def test_public_modules_declare_their_public_names(path):
    parts = path[: -len(".py")].split(os.sep)
    if any(p.startswith("_") and p != "__init__" for p in parts) or parts[-1] == "__main__":
        pytest.skip("private module")
    tree, _ = _tree(path)
    names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    names |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    assert "__all__" in names, f"{path} has no __all__"


def _dotted(path: str) -> str:
    return path[: -len(".py")].replace(os.sep, ".").removesuffix(".__init__")


def _is_module(dotted: str) -> bool:
    base = os.path.join(ROOT, *dotted.split("."))
    return os.path.exists(base + ".py") or os.path.isdir(base)


def _private_uses(path: str) -> list[str]:
    """`from imbal_keras.x import _name` and `module._name` where the module is another imbal_keras module; a
    package's own private modules are its business."""
    tree, _ = _tree(path)
    here = _dotted(path)
    package = here if path.endswith("__init__.py") else here.rsplit(".", 1)[0]
    modules, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imbal_keras"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                inside = node.module == package or node.module.startswith(package + ".")
                if alias.name.startswith("_") and not inside:
                    found.append(f"{path}:{node.lineno} from {node.module} import {alias.name}")
                if _is_module(target) and target != here:
                    modules[alias.asname or alias.name] = target
    for node in ast.walk(tree):
        is_private = isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        if is_private and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.append(f"{path}:{node.lineno} {modules[node.value.id]}.{node.attr}")
    return found


def test_no_private_name_is_used_across_modules():
    found = [use for path in _modules() if path.startswith("imbal_keras") for use in _private_uses(path)]
    assert not found, "\n".join(found)
