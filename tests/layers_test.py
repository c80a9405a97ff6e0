"""The package's structure: the import-linter contracts in pyproject.toml hold, and they fail on an upward import."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT_IMPORTS = shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint(cwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": cwd}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_layer_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("errors.py", "from imbal_keras.grid import sweep", "imbal_keras.errors is not allowed to import"),
        ("data/__init__.py", "from imbal_keras import config", "imbal_keras.data is not allowed to import"),
        ("callbacks/__init__.py", "from imbal_keras.data import _sampling", "imbal_keras.data._sampling"),
    ],
    ids=["upward", "upward_one_layer", "private_module"],
)
def test_the_contracts_fail_on_a_bad_import(tmp_path, module, line, expected):
    shutil.copytree(os.path.join(ROOT, "imbal_keras"), tmp_path / "imbal_keras")
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path / "pyproject.toml")
    path = tmp_path / "imbal_keras" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(str(tmp_path))
    assert result.returncode != 0
    assert expected in result.stdout
