"""What the dense command-line tests share: a user's module written where `python:` finds it, and
`run_experiment.py` through its real entry point in this process."""

import sys
import textwrap
from unittest import mock

import pytest
from absl.testing import flagsaver

from imbal_keras.cli import experiment_flags

STEPS, EVERY, BATCH = 6, 3, 4


def user_module(tmp_path_factory, name: str, source: str):
    """Writes `source` as module `name` into a fresh folder on sys.path (a generator for a pytest fixture; a name
    of its own per test module, since another module's may already sit in sys.modules)."""
    folder = tmp_path_factory.mktemp("user_code")
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(folder))
    sys.modules.pop(name, None)
    yield name
    sys.path.remove(str(folder))


def run_main(args: list[str], capsys) -> tuple[int | None, str]:
    """`run_experiment.py ARGS` (after a tiny step budget) through its real entry point: (exit code, stderr)."""
    import run_experiment

    argv = ["run_experiment.py", f"--steps={STEPS}", f"--eval_every={EVERY}", f"--batch_size={BATCH}", *args]
    with flagsaver.flagsaver(), mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exit_info:
        experiment_flags.run_main(run_experiment.main)
    return exit_info.value.code, capsys.readouterr().err
