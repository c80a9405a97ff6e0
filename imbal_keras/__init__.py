"""imbal_keras: rebalancing, training instrumentation and seed-aware comparisons for imbalanced data.

The top level lists what users import: the subpackages (`imbal_keras.callbacks`, `imbal_keras.data`,
`imbal_keras.strategies`, ..., each with its own `__all__`) and `compare` / `Comparison`, the grid for Python
objects. Everything is loaded at first use, so `import imbal_keras` is light and `imbal_keras.config` and the
grid's spec code stay free of TensorFlow. The grid, its report and `compare` need the `grid` extra
(`pip install 'imbal_keras[grid]'`); the callbacks, pipelines and strategies need only the core install.
"""

from __future__ import annotations

import importlib
from typing import Any

from imbal_keras._version import __version__ as __version__

# Subpackages and modules, in the order of the layers (top first).
_MODULES = (
    "grid",
    "training",
    "callbacks",
    "diagnostics",
    "models",
    "runs",
    "config",
    "strategies",
    "data",
    "losses",
    "metrics",
    "errors",
)
# Names served from a module below the top level.
_NAMES = {"compare": "imbal_keras.grid.comparison", "Comparison": "imbal_keras.grid.comparison"}

__all__ = ["Comparison", "compare", *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"imbal_keras.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'imbal_keras' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
