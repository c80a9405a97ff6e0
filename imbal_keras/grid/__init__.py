"""Grids of runs: what a grid is (`sweep`, `presets`), running it (`runner`, over the executors of `launch`),
its statistics (`stats`, `verdict`) and report (`report`), and `compare` for a model and data given as Python
objects.

The names below are what users call. `GridSpec`, `Question`, `make_spec`, `expand` and `spec_from_preset` import
no TensorFlow; the others are loaded at first use, so that `imbal_keras.grid.sweep` stays free of it.
"""

from typing import Any

from imbal_keras.errors import require_extra

require_extra("imbal_keras.grid", "grid", ("matplotlib", "statsmodels"))

from imbal_keras.grid.presets import spec_from_preset  # noqa: E402
from imbal_keras.grid.sweep import GridSpec, Question, expand, make_spec  # noqa: E402

_LAZY = {
    "run_grid": ("imbal_keras.grid.runner", "run_grid"),
    "run_and_report": ("imbal_keras.grid.main", "run_and_report"),
    "build_report": ("imbal_keras.grid.report", "build"),
    "compare": ("imbal_keras.grid.comparison", "compare"),
    "Comparison": ("imbal_keras.grid.comparison", "Comparison"),
}

__all__ = ["GridSpec", "Question", "expand", "make_spec", "spec_from_preset", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'imbal_keras.grid' has no attribute {name!r}")
