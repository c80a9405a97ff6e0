"""`BatchComposition`: the class make-up of every batch that was trained on."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram.summary_v2 import histogram_pb

from imbal_keras.callbacks import _labels, rows
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

    Dense labels (a class per pixel or token, for an output (B, ..., K)) count elements: `count` is the
    pixels (tokens) of class c, `share` their share of the labelled elements, and the row adds
    `composition/elements` (labelled elements) and `composition/examples/class_{c}` (examples holding
    class c). Multi-label targets ((B, L) of 0/1 under a binary cross-entropy) count each label's
    positives and add `composition/no_label`. For a model with several outputs, every output's tags
    start with its name (see docs/callbacks.md).

    Works with any train step (custom ones included): it only reads the batch. Under `tf.distribute`
    the values are those of the global batch (the replicas' counts are summed).

    Args:
      log_dir: TensorBoard directory; events go to `log_dir/train`.
      every_n_steps: record every n-th optimizer step (default: every step).
      minority_class: the class whose absence is flagged; class 1 (the positive class) by default.
      num_classes: K; inferred from the model output when omitted ((B, 1) output means K = 2).
      class_names: a name per class, in class order, used in the tags and columns instead of the class ids
        (`class_{name}`); K is their number.
      outputs: for a model with several outputs, the names of the outputs to observe (default: every output
        with labels); each output's tags and columns start with its name (`main/...`, `main_...`).
      ignore_class: for dense labels (a class per pixel or token), the label of elements that count in no class;
        by default the compiled loss's own `ignore_class`, if it has one.

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
        outputs: list[str] | None = None,
        ignore_class: int | None = None,
    ):
        super().__init__(
            log_dir,
            every_n_steps=every_n_steps,
            minority_class=minority_class,
            num_classes=num_classes,
            class_names=class_names,
            outputs=outputs,
            ignore_class=ignore_class,
        )

    def _tags(self) -> list[str]:
        return [tag for target in self._targets for tag in rows.output_composition_tags(target)]

    def _raw_width(self) -> int:
        return sum(len(rows.output_composition_tags(target, raw=True)) for target in self._targets)

    def _columns(self, raw: np.ndarray, steps: np.ndarray) -> np.ndarray:
        columns, start = [], 0
        for target in self._targets:
            width = len(rows.output_composition_tags(target, raw=True))
            columns.append(self._output_columns(target, raw[:, start : start + width]))
            start += width
        return np.concatenate(columns, axis=1)

    def _output_columns(self, target: _labels.Target, raw: np.ndarray) -> np.ndarray:
        """One output's logged columns from its raw rows (`rows.output_composition_tags`)."""
        k, minority = target.num_classes, self.minority_class
        dense = target.kind == _labels.DENSE
        batch_size = raw[:, :1]
        # Dense rows: the labelled elements, then the counts; others: the counts.
        first = 2 if dense else 1
        counts = raw[:, first : first + k]
        total = raw[:, 1:2] if dense else batch_size
        # A label outside 0..K-1 is in no class's count (multi-label counts are positives, not a partition).
        if target.kind != _labels.MULTI_LABEL and np.any(counts.sum(axis=1, keepdims=True) != total):
            where = f" of output {target.name!r}" if target.name else ""
            raise UserInputError(
                f"BatchComposition: labels{where} outside the classes 0..{k - 1} of the model. "
                f"Received: num_classes={k}"
            )
        shares = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
        no_minority = counts[:, minority : minority + 1] == 0
        return np.concatenate([raw[:, :first], counts, shares, raw[:, first + k :], no_minority], axis=1)

    def record_batch(self, step: tf.Tensor, y, sample_weight) -> None:
        """Records the batch (called by the probe inside the train step).

        Few graph ops, since they run in every step: a one-hot row per example (all zeros for a label outside
        0..K-1, which the host then finds as counts short of the batch size), its column sums for the counts,
        and without sample weights the weights are the counts.
        """
        name = type(self).__name__

        def row():
            parts = []
            for target in self._targets:
                labels = _labels.select(y, target)
                weights = _labels.select(sample_weight, target, shared=True)
                if target.kind == _labels.MULTI_LABEL:
                    positives = _labels.positives(labels, target, name)
                    weights = None if weights is None else tf.reshape(weights, [tf.shape(positives)[0], -1])
                    parts += rows.multi_label_composition_row(positives, weights)
                elif target.kind == _labels.DENSE:
                    ids = _labels.class_ids(labels, target, name)
                    weights = None if weights is None else tf.reshape(weights, [tf.shape(ids)[0], -1])
                    labelled = tf.cast(ids >= 0, tf.float32)
                    parts += rows.dense_composition_row(tf.one_hot(ids, target.num_classes), labelled, weights)
                else:
                    one_hot = tf.one_hot(_labels.class_ids(labels, target, name), target.num_classes)
                    parts += rows.composition_row(one_hot, None if weights is None else tf.reshape(weights, [-1]))
            return parts

        self._record(step, row)

    def end_epoch(self, epoch: int) -> None:
        # The histogram is of the first observed output's minority count.
        target = self._targets[0]
        column = self._tags().index(f"{target.prefix}composition/count/class_{target.labels[self.minority_class]}")
        minority = np.concatenate([values[:, column] for _, _, values in self._blocks]) if self._blocks else []
        if len(minority):
            self._events.write_summary(
                epoch,
                histogram_pb(f"{target.prefix}composition/minority_count", minority, buckets=int(minority.max()) + 1),
            )
        super().end_epoch(epoch)

    def summary(self) -> dict[str, float]:
        """Scalar summaries over the run, for the results table (see docs/callbacks.md); with several outputs, each
        output's keys start with its name."""
        frame = self.dataframe()
        summary = {}
        for target in self._targets:
            prefix = target.prefix.replace("/", "_")
            label = target.labels[self.minority_class]
            minority = frame[f"{prefix}composition_count_class_{label}"].astype(float)
            summary |= {
                f"{prefix}composition_frac_batches_without_minority": float(
                    frame[f"{prefix}composition_no_minority"].mean()
                ),
                f"{prefix}composition_mean_minority_per_batch": float(minority.mean()),
                f"{prefix}composition_std_minority_per_batch": float(minority.std(ddof=0)),
                f"{prefix}composition_mean_minority_share": float(
                    frame[f"{prefix}composition_share_class_{label}"].mean()
                ),
            }
        return summary
