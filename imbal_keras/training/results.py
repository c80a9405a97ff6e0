"""What a finished run returns, whichever path trained it (`experiment.run`, `dense_run.run`, a pack)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from imbal_keras.config import ExperimentConfig


@dataclasses.dataclass
class RunResult:
    """A finished run.

    Attributes:
      run_dir: the finished run folder.
      config: the config that ran.
      curve: one row per evaluation (the content of metrics.csv).
      summary: the content of result.json.
    """

    run_dir: str
    config: ExperimentConfig
    curve: pd.DataFrame
    summary: dict[str, Any]


__all__ = ["RunResult"]
