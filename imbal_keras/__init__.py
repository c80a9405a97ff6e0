"""imbal_keras: rebalancing, training instrumentation and seed-aware comparisons for imbalanced data.

The package's top level is its Python API for notebooks and scripts; everything else is in its modules
(`imbal_keras.data.datasets`, `imbal_keras.models`, `imbal_keras.strategies`, ...). `compare` and `Comparison` are
loaded at first use, so that `import imbal_keras.config` and the grid's spec code stay free of TensorFlow.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["Comparison", "compare"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from imbal_keras.grid import comparison

        return getattr(comparison, name)
    raise AttributeError(f"module 'imbal_keras' has no attribute {name!r}")
