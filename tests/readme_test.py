"""The README stays true: Quickstart lines, the strategy table and the Python snippets."""

import os
import re

import numpy as np

from imbal_keras import strategies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def _section(title):
    text = _readme()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_quickstart_is_exactly_two_command_lines_and_ci_runs_the_second():
    (block,) = re.findall(r"```bash\n(.*?)```", _section("Quickstart"), re.S)
    lines = block.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("python run_experiment.py --strategy=upsample")
    assert lines[1].startswith("python -m pip install -r requirements-dev.txt && python -m pytest")
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert "grep -m1 '^python -m pip install -r requirements-dev.txt && python -m pytest' README.md" in ci


def test_strategy_table_matches_the_registry():
    table = _section("Strategies").split("<!-- strategies-table")[1].split("<!-- end strategies-table")[0]
    rows = re.findall(r"^\| `(\w+)` \| (.*) \|$", table, re.M)
    assert rows == [(s.name, s.summary) for s in strategies.STRATEGIES.values()]


def test_strategies_snippet_runs():
    (snippet,) = re.findall(r"```python\n(.*?)```", _section("Strategies"), re.S)
    scope = {}
    exec(snippet, scope)
    x, y = next(iter(scope["train"]))
    assert x.shape == (16, 8) and y.shape == (16,)
    _, y_w, w = next(iter(scope["weighted"]))
    np.testing.assert_allclose(w.numpy(), np.where(y_w.numpy() == 1, 1000 / 20, 1000 / 1980), rtol=1e-6)
