"""`StepLoss`: the training loss of every batch, recorded inside the train step (what a run logs as train/loss)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from imbal_keras.callbacks import probe
from imbal_keras.callbacks.recorder import StepRecorder

__all__ = ["StepLoss"]


class StepLoss(StepRecorder):
    """Logs `train/loss`, each batch's own training loss, into `log_dir` itself.

    Keras's logs hold the running mean of the loss over the epoch; the loss of batch b (0-based) of an epoch is
    (b + 1) * mean_b - b * mean_{b-1} (batches of equal size). The running mean is recorded in the graph after
    every step, so this holds also when one call runs several steps (`steps_per_execution > 1`), where Keras
    hands callbacks the logs of the call's last step only.
    """

    _events_subdir = ""
    # Logged at the number of steps taken after the batch (1 for the first), the step of the evaluations.
    _events_step_offset = 1
    _observes_labels = False

    def __init__(self, log_dir: str):
        # The class count is not used; 2 skips inferring it from the model.
        super().__init__(log_dir, every_n_steps=1, minority_class=0, num_classes=2)
        self._epoch_start = 0
        self._last_mean = 0.0

    def _tags(self) -> list[str]:
        return ["train/loss"]

    def _raw_width(self) -> int:
        return 1

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch_start = probe.batch_count(self.model)
        self._last_mean = 0.0

    def record_batch(self, step, y, sample_weight) -> None:
        """Nothing before the step: the loss is known after it (`record_logs`)."""

    def record_logs(self, step: tf.Tensor, logs) -> None:
        """Records the step's running mean of the loss (called by the probe inside the train step)."""
        self._record(step, lambda: [logs["loss"]])

    def _columns(self, raw: np.ndarray, steps: np.ndarray) -> np.ndarray:
        means = raw[:, 0].astype(np.float64)
        batch = (steps - self._epoch_start).astype(np.float64)
        previous = np.concatenate([[self._last_mean], means[:-1]])
        self._last_mean = float(means[-1])
        return ((batch + 1) * means - batch * previous)[:, None]
