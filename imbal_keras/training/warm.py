"""Warm runs: compiled models kept between the runs of one process.

The runs of a grid mostly differ in their seeds. For a small model the fixed cost of a run (tracing the train
step, the instrumented steps and the evaluation forward pass, and building the pipeline) is larger than its
training (measured in BENCHMARKS.md). A warm run takes the compiled model of an earlier run of the same shape
from this cache and starts it over from its own seeds instead of building and tracing again:

- weights: those a fresh build with the run's initialisation seed gives (the model is built and its values
  copied in, so they are the values a cold run starts from);
- optimizer: every variable back to its value before the first step (iterations 0, zero slots);
- the instrumentation recorders: their rows forgotten, their in-graph buffers kept (`StepRecorder.reuse`);
- the evaluation forward pass, the last few datasets and the traced initial-bias objective: kept;
- the data stream: built anew from the run's order seed, as a cold run builds it.

Warm runs also call several steps at once (`steps_per_call`): one call of k steps runs the same steps in the
same order, on the same batches, as k calls of one. The per-batch loss and the instrumentation are recorded
inside the compiled step, so the run folder is unchanged. TensorFlow may optimise the loop of steps differently
from one step: the results are the plain path's bitwise where it does not (K = 2 and 4 in tests/warm_test.py,
the seed_question preset) and equal up to rounding where it does (K = 10: within rtol 1e-5 over a short run,
drifting apart over a long one as any rounding difference in SGD does; docs/grids.md gives the figures).
What cannot run warm runs the plain path, with its reason (`imbal_keras.training.plan.plan_run` decides; the grid's
progress prints it once per reason).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from imbal_keras.config import ExperimentConfig, key_fields

__all__ = ["DEFAULT_CAPACITY", "MAX_STEPS_PER_CALL", "Entry", "WarmModels", "snapshot_optimizer", "steps_per_call"]

# The most steps one compiled call of a warm run runs.
MAX_STEPS_PER_CALL = 100
# Compiled models kept per process: enough for every variant of a preset (each worker cycles through them).
DEFAULT_CAPACITY = 32


@dataclasses.dataclass
class Entry:
    """One compiled model and what a run of its shape reuses.

    Attributes:
      model: the compiled model.
      optimizer_state: the optimizer's variables before the first step, in `optimizer.variables` order.
      instrumentation: the instrumentation callbacks (reused with `reuse(log_dir)`).
      functions: other traced functions keyed by name (the evaluation forward pass).
      runs: runs this entry has served.
    """

    model: Any
    optimizer_state: list[np.ndarray]
    instrumentation: list
    functions: dict[str, Callable] = dataclasses.field(default_factory=dict)
    runs: int = 0

    def reset_optimizer(self) -> None:
        """Sets the optimizer's variables back to their values before the first step."""
        for variable, value in zip(self.model.optimizer.variables, self.optimizer_state, strict=True):
            variable.assign(value)


class WarmModels:
    """The per-process cache of compiled models (and of the last few datasets).

    Args:
      capacity: compiled models kept; when full, all are dropped and Keras's session is cleared (its global
        state would otherwise grow run after run).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = capacity
        self._entries: dict[str, Entry] = {}
        self._datasets: dict[tuple, Any] = {}
        self.hits = 0
        self.misses = 0
        self.plain = 0
        # How the last run ran: `warm`, `cold` (compiled a model to keep) or `plain: <reason>`.
        self.last_path = ""
        # The stacked pipelines packs keep (`replicas.Pipelines`), set up by the first pack.
        self.pipelines: Any = None
        # Initial output biases found by packs (`initialization.initial_output_biases`), a few hundred bytes each.
        self.biases: dict = {}
        # Initial weights of models built for packs (`side_by_side._initial_weights`), by what they depend on.
        self.initial_weights: dict = {}

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Entry]:
        """The kept entries, oldest first."""
        return list(self._entries.values())

    @staticmethod
    def key(config: ExperimentConfig, input_shape: tuple, class_counts: np.ndarray) -> str:
        """Everything a run's traced functions depend on: the config's fields of the compiled-model key
        (`config.key_fields("compiled")`: not its seeds, per-run settings or output location), the input shape and
        the training class counts (losses and weights are computed from them)."""
        flat = config.flat()
        fields = {name: flat[name] for name in key_fields("compiled") if name in flat}
        fields["input_shape"] = list(input_shape)
        fields["class_counts"] = [int(c) for c in class_counts]
        fields["steps_per_call"] = steps_per_call(config.training.steps, config.training.eval_every)
        return json.dumps(fields, sort_keys=True, default=str)

    def say_plain(self, reason: str) -> None:
        """Counts a run that takes the plain path, and why (`last_path`)."""
        self.plain += 1
        self.last_path = f"plain: {reason}"

    def dataset(self, key: tuple, load: Callable[[], Any]) -> Any:
        """The dataset under `key` (data config and data seed), loaded on first use; the last 4 are kept."""
        if key not in self._datasets:
            if len(self._datasets) >= 4:
                del self._datasets[next(iter(self._datasets))]
            self._datasets[key] = load()
        return self._datasets[key]

    def get(self, key: str) -> Entry | None:
        """The entry kept under `key` (counted as a hit, and the run as `warm`), or None (a miss)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self.last_path = "warm"
        entry.runs += 1
        return entry

    def put(self, key: str, entry: Entry) -> None:
        """Keeps `entry` (and the step functions its model's recorders get compiled, `probe.keep_compiled`)."""
        from imbal_keras.callbacks import probe

        if len(self._entries) >= self.capacity:
            self.clear()
        probe.keep_compiled(entry.model)
        entry.runs = 1
        self.last_path = "cold"
        self._entries[key] = entry

    def clear(self) -> None:
        """Drops every compiled model and clears Keras's session."""
        import keras

        from imbal_keras.callbacks import probe

        for entry in self._entries.values():
            probe.forget_compiled(entry.model)
        self._entries.clear()
        keras.backend.clear_session()


def steps_per_call(steps: int, eval_every: int, diagnose_every: int = 0) -> int:
    """Steps per compiled call (`steps_per_execution`) of a warm run: the largest divisor of both the step budget
    and the evaluation interval (and of `diagnose_every`, when given) up to MAX_STEPS_PER_CALL, so that calls end
    exactly at every evaluation (and diagnosis) and at the last step. One call of k steps runs the same steps, in
    the same order, on the same batches as k calls of one, and pays Python's per-step overhead once; see the
    module docstring for how close the results are."""
    common = math.gcd(math.gcd(steps, eval_every), diagnose_every)
    return max(d for d in range(1, min(common, MAX_STEPS_PER_CALL) + 1) if common % d == 0)


def snapshot_optimizer(model) -> list[np.ndarray]:
    """Builds the optimizer of compiled `model` (as `fit` would) and returns its variables' values."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return [np.array(v.numpy()) for v in optimizer.variables]
