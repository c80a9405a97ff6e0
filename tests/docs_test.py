"""The docs stay true: every code block of README.md, BENCHMARKS.md and docs/*.md runs, and the generated parts
(the strategy table, docs/cli.md) match what generates them.

A page's blocks are handled by their fence's language:

- `python`: the page's python blocks run in order in one namespace (as a reader would in one session), in a
  temporary working directory;
- `bash` / `sh`: each command must be one the toolkit documents, and is checked as far as it can be without
  doing the work: `python run_experiment.py ...` runs through the real entry point in this process with
  `--dry_run` appended and must exit 0; `python -m benchmarks.X ...` (or any other module of this repository)
  must parse its arguments with the module's own argparse; `pip install`, `pytest`, `ruff` and `tensorboard`
  lines are checked for shape and for the files they name;
- `text`: output shown as is (an error message, a folder listing); not run;
- `json`: must parse.

Pages are discovered here, so a page added under docs/ is covered without changing this file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from unittest import mock

import numpy as np
import pytest
from absl import flags as absl_flags
from absl.testing import flagsaver

from flags import cli_reference
from imbal_keras import strategies
from imbal_keras.cli import experiment_flags, grid_flags
from imbal_keras.errors import UserInputError
from imbal_keras.grid import presets, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `import run_experiment` and `python -m benchmarks.X` resolve from the repository root
    sys.path.insert(0, ROOT)

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_LANGUAGES = ("python", "bash", "sh", "text", "json")
README_MAX_LINES = 250


def _pages() -> list[str]:
    """Every documentation page, relative to the repository root."""
    found = ["README.md", "BENCHMARKS.md", *sorted(glob.glob("docs/*.md", root_dir=ROOT))]
    return [page for page in found if os.path.exists(os.path.join(ROOT, page))]


def _read(page: str) -> str:
    with open(os.path.join(ROOT, page)) as f:
        return f.read()


def _blocks(page: str) -> list[tuple[str, str, int]]:
    """(language, code, line number of the fence) of every fenced block of `page`."""
    text = _read(page)
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in _FENCE.finditer(text)]


def _commands(page: str) -> list[tuple[str, str]]:
    """(where, command) for every command of the bash/sh blocks of `page`: continuation lines joined, comments
    and blank lines dropped, `a && b` split into two commands."""
    found = []
    for language, code, line in _blocks(page):
        if language not in ("bash", "sh"):
            continue
        for offset, text in enumerate(code.replace("\\\n", " ").splitlines()):
            text = text.split(" #", 1)[0].strip()
            if text and not text.startswith("#"):
                found += [(f"{page}:{line + 1 + offset}", part.strip()) for part in text.split("&&")]
    return found


# The README.


def _readme_section(title: str) -> str:
    text = _read("README.md")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_quickstart_is_exactly_two_command_lines_and_ci_runs_the_second():
    (block,) = re.findall(r"```bash\n(.*?)```", _readme_section("Quickstart"), re.S)
    lines = block.strip().splitlines()
    assert lines == [
        "python -m pip install -r requirements.txt && python run_experiment.py --strategy=upsample",
        lines[1],
    ]
    assert lines[1].startswith("python -m pip install -r requirements-dev.txt && python -m pytest")
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert "grep -m1 '^python -m pip install -r requirements-dev.txt && python -m pytest' README.md" in ci
    assert _read("README.md").count("\n" + lines[1]) == 1  # the line CI greps for is the Quickstart's


def test_readme_is_short():
    assert len(_read("README.md").splitlines()) <= README_MAX_LINES


@pytest.fixture(scope="module")
def generated() -> dict:
    """What the generator writes when run as documented, in a fresh interpreter.

    Other tests in this process may register strategies (this module's own pages do, and restore the registry;
    other modules may import families the package does not), so the committed files are compared with what
    `python -m flags.cli_reference` would write, not with this process's registry.
    """
    script = (
        "import json\n"
        "from flags import cli_reference\n"
        "from imbal_keras import strategies\n"
        "from tools import api_reference\n"
        "print(json.dumps({'cli': cli_reference.render(), 'table': cli_reference.strategies_table(),\n"
        "                  'api': api_reference.render(),\n"
        "                  'strategies': [[s.name, s.summary] for s in strategies.STRATEGIES.values()]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(done.stdout)


def test_strategy_table_matches_the_registry(generated):
    text = _read("README.md")
    table = text.split(cli_reference.TABLE_START)[1].split(cli_reference.TABLE_END)[0]
    assert table.strip() == generated["table"], (
        f"README.md's strategy table is out of date: run `{cli_reference.REGENERATE}`"
    )
    rows = re.findall(r"^\| `(\w+)` \| (.*) \|$", table, re.M)
    assert [list(row) for row in rows] == generated["strategies"]


def test_readme_examples_do_what_they_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope = _run_python_blocks("README.md")
    x, y = next(iter(scope["train"]))
    assert x.shape == (16, 8) and y.shape == (16,)
    assert np.bincount(y.numpy(), minlength=2).tolist() == [8, 8]  # stratified at 50/50: exactly 8 + 8
    _, y_w, w = next(iter(scope["weighted"]))
    # mean_one weights: w_c = N t_c / n_c with N = 1000, t = 1/2, n = (990, 10).
    np.testing.assert_allclose(w.numpy(), np.where(y_w.numpy() == 1, 1000 / 20, 1000 / 1980), rtol=1e-6)
    steps = scope["composition"].dataframe()
    assert len(steps) == 32  # 2 epochs of 256 / 16 batches, every step recorded
    counts = steps[["composition_count_class_0", "composition_count_class_1"]].to_numpy()
    assert (counts.sum(axis=1) == 16).all()
    assert counts[:16, 1].sum() == int(scope["y"].sum())  # the first epoch sees every positive once
    assert os.path.exists(tmp_path / "logs" / "run1" / "composition.csv")


# docs/cli.md, generated.


def test_cli_reference_is_current(generated):
    assert os.path.exists(cli_reference.CLI_PATH), f"docs/cli.md is missing: run `{cli_reference.REGENERATE}`"
    with open(cli_reference.CLI_PATH) as f:
        committed = f.read()
    assert committed == generated["cli"], (
        f"docs/cli.md differs from the flags, strategies and presets it is generated from: run "
        f"`{cli_reference.REGENERATE}`"
    )


def test_api_reference_is_current(generated):
    from tools import api_reference

    assert os.path.exists(api_reference.API_PATH), f"docs/api.md is missing: run `{api_reference.REGENERATE}`"
    with open(api_reference.API_PATH) as f:
        committed = f.read()
    assert committed == generated["api"], (
        f"docs/api.md differs from the public modules' __all__ and docstrings: run `{api_reference.REGENERATE}`"
    )


def test_api_reference_lists_every_public_name_once():
    from tools import api_reference

    text = api_reference.render()
    for module in api_reference.public_modules():
        assert f"## `{module.__name__}`" in text
        for name in getattr(module, "__all__", ()):
            if not isinstance(getattr(module, name), type(module)):
                heading = re.compile(rf"^### `{re.escape(module.__name__)}\.{re.escape(name)}[(`]", re.M)
                assert len(heading.findall(text)) == 1, f"{module.__name__}.{name}"


def test_cli_reference_write_regenerates_both_files(tmp_path, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{cli_reference.TABLE_START}\n| `stale` | gone |\n{cli_reference.TABLE_END}\nrest\n")
    monkeypatch.setattr(cli_reference, "CLI_PATH", str(tmp_path / "cli.md"))
    monkeypatch.setattr(cli_reference, "README_PATH", str(readme))
    cli_reference.main(["--write"])
    assert (tmp_path / "cli.md").read_text() == cli_reference.render()
    table = cli_reference.strategies_table()
    assert readme.read_text() == f"intro\n{cli_reference.TABLE_START}\n{table}\n{cli_reference.TABLE_END}\nrest\n"
    cli_reference.main([])  # without --write it prints docs/cli.md
    assert capsys.readouterr().out.endswith(cli_reference.render())
    with pytest.raises(ValueError, match="lacks the strategy table markers"):
        cli_reference.readme_with_table("no table here")


def test_cli_reference_names_every_flag_strategy_parameter_and_preset():
    text = cli_reference.render()
    for module in (experiment_flags, grid_flags):
        for flag in absl_flags.FLAGS.get_flags_for_module(module.__name__):
            assert f"| `--{flag.name}` |" in text, flag.name
    for strategy in strategies.STRATEGIES.values():
        assert f"| `{strategy.name}` |" in text and strategy.summary in text
    for param in strategies.all_params().values():
        row = next(line for line in text.splitlines() if line.startswith(f"| `--{param.name}` | {param.type.__name__}"))
        assert param.valid_range() in row and ", ".join(f"`{s}`" for s in strategies.declaring(param.name)) in row
    for name in presets.PRESETS:
        assert f"| `{name}` | {len(sweep.expand(presets.spec_from_preset(name)))} |" in text


def test_cli_reference_axis_column_follows_the_parser():
    """A setting marked as a grid axis makes one; one marked `no` is refused as an axis."""
    rows = re.findall(r"^\| `--(\w+)` \| [^|]* \| (yes|yes, or a:b|no) \|", cli_reference.settings_section(), re.M)
    marks = dict(rows)
    assert marks["seed"] == "yes, or a:b" and marks["learning_rate"] == "yes"
    assert marks["output_dir"] == marks["run_name"] == marks["hidden_units"] == marks["log_composition"] == "no"
    with flagsaver.flagsaver():
        absl_flags.FLAGS(["prog", "--seed=0:3", "--learning_rate=0.1,0.2", "--strategy=none,upsample"])
        _, axes = experiment_flags.settings()
    assert axes == {"seed": (0, 1, 2), "learning_rate": (0.1, 0.2), "strategy": ("none", "upsample")}
    with pytest.raises(UserInputError, match="Unknown grid axis 'output_dir'"):
        sweep.validate(sweep.make_spec({}, {"output_dir": ("a", "b")}))


# Every page's blocks.


def test_every_block_declares_a_language_this_test_handles():
    untagged = [
        f"{page}:{line} ({language or 'no language'})"
        for page in _pages()
        for language, _, line in _blocks(page)
        if language not in _LANGUAGES
    ]
    assert not untagged, f"code blocks must be fenced as one of {', '.join(_LANGUAGES)}: {untagged}"


def test_json_blocks_parse():
    unparsable = []
    for page in _pages():
        for language, code, line in _blocks(page):
            if language == "json":
                try:
                    json.loads(code)
                except ValueError as e:
                    unparsable.append(f"{page}:{line}: {e}")
    assert not unparsable, unparsable


@pytest.fixture
def restored_registry():
    """Pages may register strategies (the architecture page shows how); the registry is restored afterwards."""
    registered, params = dict(strategies.STRATEGIES), dict(strategies._PARAMS)
    yield
    strategies.STRATEGIES.clear()
    strategies.STRATEGIES.update(registered)
    strategies._PARAMS.clear()
    strategies._PARAMS.update(params)


def _run_python_blocks(page: str) -> dict:
    scope: dict = {"__name__": f"docs:{page}"}
    for language, code, line in _blocks(page):
        if language == "python":
            exec(compile("\n" * line + code, f"{page}", "exec"), scope)  # line numbers match the page
    return scope


# The README's blocks run in `test_readme_examples_do_what_they_say`, which also checks what they print.
@pytest.mark.parametrize(
    "page", [p for p in _pages() if p != "README.md" and any(b[0] == "python" for b in _blocks(p))]
)
def test_python_blocks_run(page, tmp_path, monkeypatch, restored_registry):
    monkeypatch.chdir(tmp_path)
    _run_python_blocks(page)


def _in_process(argv: list[str], capsys) -> tuple[int | None, str]:
    """`python run_experiment.py ARGV --dry_run` through its real entry point, in this process: (exit code, stderr)."""
    import run_experiment

    with (
        flagsaver.flagsaver(),
        mock.patch.object(sys, "argv", ["run_experiment.py", *argv, "--dry_run"]),
        pytest.raises(SystemExit) as exit_info,
    ):
        experiment_flags.run_main(run_experiment.main)
    return exit_info.value.code, capsys.readouterr().err


def _prepare_merge(argv: list[str]) -> None:
    """A merge reads the grid folder its shards wrote: create it from the same command without the merge flags."""
    grid_argv = [a for a in argv if not a.startswith(("--merge", "--nomerge"))]
    with flagsaver.flagsaver():
        absl_flags.FLAGS(["run_experiment.py", *grid_argv])
        for folder in (grid_flags.grid_dir(), *absl_flags.FLAGS.merge_from):
            sweep.prepare(folder, sweep.validate(grid_flags.to_spec()))


class _Parsed(Exception):
    """Raised in place of running a module once its arguments have parsed."""


def _check_module_arguments(module: str, args: list[str]) -> None:
    """Runs `python -m module args` up to its argument parsing: the arguments must parse, nothing else runs."""
    path = os.path.join(ROOT, *module.split(".")) + ".py"
    assert os.path.exists(path), f"no module {module} in the repository"
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, argv=None, namespace=None):
        parse(parser, argv, namespace)
        raise _Parsed

    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop),
        mock.patch.object(sys, "argv", [path, *args]),
        warnings.catch_warnings(),
        pytest.raises(_Parsed),
    ):
        # runpy warns when the module was imported before (this test imports flags.cli_reference); harmless here.
        warnings.simplefilter("ignore", RuntimeWarning)
        runpy.run_module(module, run_name="__main__")


def _check_shape(words: list[str], where: str) -> None:
    """Commands that install, test, lint or view: their form and the files they name."""
    if words[:4] == ["python", "-m", "pip", "install"] or words[:2] == ["pip", "install"]:
        rest = words[4:] if words[0] == "python" else words[2:]
        extras = re.compile(r"\.(\[[a-z,]+\])?")
        package = len(rest) == 1 and extras.fullmatch(rest[0]) is not None  # `.` or `.[extra,...]`
        assert package or rest == ["-e", "."] or (rest[:1] == ["-r"] and len(rest) == 2), where
        if rest[0] == "-r":
            assert os.path.exists(os.path.join(ROOT, rest[1])), f"{where}: no {rest[1]}"
    elif words[:3] == ["python", "-m", "pytest"]:
        for word in words[3:]:
            assert re.fullmatch(r"-n|\d+|-q|-x|--durations=\d+|-p|no:randomly|-m|slow|not slow", word) or (
                os.path.exists(os.path.join(ROOT, word.split("::")[0]))
            ), f"{where}: unexpected pytest argument {word}"
    elif words[0] == "ruff":
        assert words[1:] in (["check", "."], ["format", "--check", "."], ["format", "."]), where
    elif words[0] == "tensorboard":
        assert words[1] == "--logdir" and len(words) == 3, where
    else:
        raise AssertionError(f"{where}: unknown command {' '.join(words)!r}")


def _all_commands() -> list[tuple[str, str]]:
    return [command for page in _pages() for command in _commands(page)]


@pytest.mark.parametrize("where,command", _all_commands(), ids=[w for w, _ in _all_commands()])
def test_shell_commands(where, command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    words = shlex.split(command)
    if words[0] == "/usr/bin/time":  # a timed command: check the command
        words = words[1:]
        while words[0].startswith("-"):
            words = words[1:]
    # The command has three names: the repository's script, the installed console script and the module.
    for name in (["python", "run_experiment.py"], ["imbal-keras"], ["python", "-m", "imbal_keras"]):
        if words[: len(name)] == name:
            words = ["python", "run_experiment.py", *words[len(name) :]]
    if words[:2] == ["python", "run_experiment.py"]:
        if "--merge" in words:
            _prepare_merge(words[2:])
        code, stderr = _in_process(words[2:], capsys)
        assert code in (None, 0), f"{where}: {command}\n{stderr}"
    elif words[:2] == ["python", "-m"] and words[2] not in ("pip", "pytest"):
        _check_module_arguments(words[2], words[3:])
    else:
        _check_shape(words, where)


# Links between pages.


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_relative_links_resolve():
    broken = []
    for page in _pages():
        text = _FENCE.sub("", _read(page))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # an external address
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) if path else ""
            file = resolved or os.path.join(ROOT, page)
            if not os.path.exists(file):
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and file.endswith(".md"):
                with open(file) as f:
                    headings = re.findall(r"^#+ (.*)$", _FENCE.sub("", f.read()), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
