"""How every training path calls `fit`: exactly the step budget, in epochs of one evaluation interval."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras


class StepBudget(keras.callbacks.Callback):
    """Stops `fit` after exactly `steps` optimizer steps (`fit` runs whole epochs of `steps_per_epoch`).

    Args:
      steps: the run's step budget.
      steps_per_epoch: the steps of one `fit` epoch (the evaluation interval).
    """

    def __init__(self, steps: int, steps_per_epoch: int):
        super().__init__()
        self.steps = steps
        self.steps_per_epoch = steps_per_epoch
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last batch of the call (several with steps_per_execution > 1).
        if self._epoch * self.steps_per_epoch + batch + 1 >= self.steps:
            self.model.stop_training = True


def fit_for_budget(model: keras.Model, dataset, training, callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """`model.fit` for exactly `training.steps` optimizer steps, in `fit` epochs of `training.eval_every` steps
    (callbacks that evaluate at an epoch's end evaluate every `eval_every` steps). The pipeline is not shuffled
    by `fit`: every strategy's pipeline shuffles, seeded.

    Args:
      model: the compiled model.
      dataset: the training pipeline (infinite).
      training: the run's `TrainingConfig` (`steps`, `eval_every`).
      callbacks: the run's callbacks, after the `StepBudget` that stops `fit`.
    """
    model.fit(
        dataset,
        steps_per_epoch=training.eval_every,
        epochs=math.ceil(training.steps / training.eval_every),
        verbose=0,
        shuffle=False,
        callbacks=[StepBudget(training.steps, training.eval_every), *callbacks],
    )


__all__ = ["StepBudget", "fit_for_budget"]
