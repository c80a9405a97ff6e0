"""The command line: absl flag definitions (`experiment_flags`, `grid_flags`) and the program (`main`). Library
code never reads flags; only this package does.

It needs the `grid` extra (`pip install 'imbal_keras[grid]'`).
"""

from imbal_keras.errors import require_extra

require_extra("imbal_keras.cli", "grid", ("absl", "matplotlib", "statsmodels"))

__all__ = ["experiment_flags", "grid_flags", "main"]
