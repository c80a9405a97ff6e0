"""`BatchComposition`: the class make-up of every batch that was trained on."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram.summary_v2 import histogram_pb

from imbal_keras.callbacks import rows
from imbal_keras.callbacks.recorder import StepRecorder
from imbal_keras.errors import UserInputError

__all__ = ["BatchComposition"]


class BatchComposition(StepRecorder):
    """Logs the class make-up of each training batch, read from inside the compiled train step.

    Per recorded step (TensorBoard tag -> DataFrame column, `/` becomes `_`):
    - `composition/batch_size`: examples in the (global) batch;
    - `composition/count/class_{c}`: examples of class c;
    - `composition/share/class_{c}`: count / batch size;
    - `composition/weight/class_{c}`: total sample weight of class c (sample weights and
      `class_weight=` included, 1 per example without weights);
    - `composition/no_minority`: 1 if the batch had no example of `minority_class`, else 0.
    At each epoch end a histogram `composition/minority_count` of the minority count per batch over
    the run so far is written (step = epoch).

    Works with any train step (custom ones included): it only reads the batch. Under `tf.distribute`
    the values are those of the global batch (the replicas' counts are summed).

    Args:
      log_dir: TensorBoard directory; events go to `log_dir/train`.
      every_n_steps: record every n-th optimizer step (default: every step).
      minority_class: the class whose absence is flagged; class 1 (the positive class) by default.
      num_classes: K; inferred from the model output when omitted ((B, 1) output means K = 2).
      class_names: a name per class, in class order, used in the tags and columns instead of the class ids
        (`class_{name}`); K is their number.

    Example:
    ```python
    model.fit(ds, epochs=5, callbacks=[BatchComposition("logs/run1")])
    rows = callback.dataframe()
    ```
    """

    def __init__(
        self,
        log_dir: str,
        *,
        every_n_steps: int = 1,
        minority_class: int = 1,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
    ):
        super().__init__(
            log_dir,
            every_n_steps=every_n_steps,
            minority_class=minority_class,
            num_classes=num_classes,
            class_names=class_names,
        )

    def _tags(self) -> list[str]:
        return rows.composition_tags(self.num_classes, class_names=self.class_names)

    def _raw_width(self) -> int:
        return len(rows.composition_raw_tags(self.num_classes, class_names=self.class_names))

    def _columns(self, raw: np.ndarray, steps: np.ndarray) -> np.ndarray:
        k = self.num_classes
        batch_size, counts, weights = raw[:, :1], raw[:, 1 : k + 1], raw[:, k + 1 :]
        # A label outside 0..K-1 is in no class's count.
        if np.any(counts.sum(axis=1, keepdims=True) != batch_size):
            raise UserInputError(
                f"BatchComposition: labels outside the classes 0..{k - 1} of the model. Received: num_classes={k}"
            )
        no_minority = counts[:, self.minority_class : self.minority_class + 1] == 0
        return np.concatenate([batch_size, counts, counts / batch_size, weights, no_minority], axis=1)

    def record_batch(self, step: tf.Tensor, y: tf.Tensor, sample_weight) -> None:
        """Records the batch (called by the probe inside the train step).

        Few graph ops, since they run in every step: a one-hot row per example (all zeros for a label outside
        0..K-1, which the host then finds as counts short of the batch size), its column sums for the counts,
        and without sample weights the weights are the counts.
        """
        one_hot = tf.one_hot(self._class_ids(y), self.num_classes, dtype=tf.float32)
        weights = None if sample_weight is None else tf.reshape(sample_weight, [-1])
        self._record(step, lambda: rows.composition_row(one_hot, weights))

    def end_epoch(self, epoch: int) -> None:
        # Column 1 + c of a row is the count of class c (after the batch size).
        column = 1 + self.minority_class
        minority = np.concatenate([values[:, column] for _, _, values in self._blocks]) if self._blocks else []
        if len(minority):
            self._events.write_summary(
                epoch,
                histogram_pb("composition/minority_count", minority, buckets=int(minority.max()) + 1),
            )
        super().end_epoch(epoch)

    def summary(self) -> dict[str, float]:
        """Scalar summaries over the run, for the results table (see docs/callbacks.md)."""
        frame = self.dataframe()
        label = self._class_labels()[self.minority_class]
        minority = frame[f"composition_count_class_{label}"].astype(float)
        return {
            "composition_frac_batches_without_minority": float(frame["composition_no_minority"].mean()),
            "composition_mean_minority_per_batch": float(minority.mean()),
            "composition_std_minority_per_batch": float(minority.std(ddof=0)),
            "composition_mean_minority_share": float(frame[f"composition_share_class_{label}"].mean()),
        }
