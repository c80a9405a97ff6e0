"""Training: how runs train and what they write.

- `plan`: the one place that decides whether a run trains `plain`, `warm` or `packed`, and says why;
- `experiment`: one run (`run`), and the pieces every path shares (setup, evaluation, step budget, finish);
- `warm`: compiled models kept between the runs of one process (`WarmModels`);
- `side_by_side`: runs of equal shapes (seeds, data seeds and strategies may differ), trained together
  (`run_pack`); `replicas`: what each of them reads (its own data, pipeline and loss);
- `initialization`: where a run's output bias starts.

The names below are imported on first use, so that `imbal_keras.training.plan` and `warm` stay importable without
TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Plan", "RunResult", "WarmModels", "plan_pack", "plan_run", "run", "run_pack"]

# Public name -> the module that defines it.
_HOMES = {
    "Plan": "plan",
    "plan_pack": "plan",
    "plan_run": "plan",
    "RunResult": "experiment",
    "run": "experiment",
    "run_pack": "side_by_side",
    "WarmModels": "warm",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
