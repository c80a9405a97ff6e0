"""Evaluation of a dense (mask, sequence) or multi-label run: per-class IoU, Dice, pixel AP and recall (per-label AP
and recall for multi-label targets) on validation and test every `eval_every` steps.

A row holds `validation_<figure>` and `test_<figure>` for every figure of `metrics.segmentation_metrics` (or
`metrics.multilabel_metrics`): `mean_iou`, `mean_dice`, `mean_average_precision`, `mean_recall`,
`iou_class_{c}`, ..., `pixel_share_class_{c}` (multi-label: `macro_average_precision`,
`micro_average_precision`, `macro_recall`, `average_precision_label_{l}`, `recall_label_{l}`,
`positive_share_label_{l}`), so `--metric=test_mean_iou` and the report read them like any other column; and
`<split>_average_precision`, the mean over classes of the pixel-level AP (multi-label: the macro AP), under the
name of the single-label runs' AUPRC, which the grid report's AUPRC sections read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import keras
import numpy as np

from imbal_keras import metrics, runs
from imbal_keras.callbacks import events as instrument_events
from imbal_keras.config import TrainingConfig
from imbal_keras.data import splits

__all__ = ["DenseEvaluator", "MAIN_FIGURE", "format_dense_summary"]

# The figure each kind's progress line and best step follow.
MAIN_FIGURE = {"segmentation": "mean_iou", "sequence": "mean_iou", "multilabel": "macro_average_precision"}
# The class-averaged AP of each kind, recorded again as `average_precision`.
_MEAN_AP = {"segmentation": "mean_average_precision", "sequence": "mean_average_precision",
            "multilabel": "macro_average_precision"}  # fmt: skip
# Rows per forward call of an evaluation.
_PREDICT_BATCH = 256


class DenseEvaluator(keras.callbacks.Callback):
    """Evaluates validation and test at the end of every `fit` epoch (= every `eval_every` steps).

    Args:
      data: the run's data (`kind` segmentation, sequence or multilabel).
      training: the run's training config (step budget, evaluation interval).
      log_dir: where the evaluations' TensorBoard scalars go.
      log: where the evaluation lines go.
      started: when the run started (`time.time()`).
      evaluation_model: the model evaluated, when it is not the trained one (a U-Net trained on crops is
        evaluated on whole images by a copy built for their shape, which takes the trained weights first).

    Attributes:
      rows: one row per evaluation (the content of metrics.csv).
      test_probabilities: the last evaluation's test probabilities (N, ..., K) or (N, L).
    """

    def __init__(
        self,
        data: splits.Data,
        training: TrainingConfig,
        log_dir: str,
        log: Callable[[str], None],
        started: float,
        evaluation_model: keras.Model | None = None,
    ):
        super().__init__()
        self.data, self.training, self.log_dir, self.log, self.started = data, training, log_dir, log, started
        self.evaluation_model = evaluation_model
        self.rows: list[dict[str, float]] = []
        self.test_probabilities: np.ndarray | None = None
        self._events = None

    def _predict(self, x: np.ndarray) -> np.ndarray:
        model = self.model
        if self.evaluation_model is not None:
            self.evaluation_model.set_weights(model.get_weights())
            model = self.evaluation_model
        return np.concatenate(
            [keras.ops.convert_to_numpy(model(x[i : i + _PREDICT_BATCH], training=False))
             for i in range(0, len(x), _PREDICT_BATCH)]
        )  # fmt: skip

    def figures(self, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        """The figures of one split from its targets and probabilities."""
        if self.data.kind == "multilabel":
            figures = metrics.multilabel_metrics(y, p)
        else:
            figures = metrics.segmentation_metrics(y, p, ignore_label=self.data.ignore_label)
        return {**figures, "average_precision": figures[_MEAN_AP[self.data.kind]]}

    def on_epoch_end(self, epoch, logs=None):
        step = min((epoch + 1) * self.training.eval_every, self.training.steps)
        row = {"step": step, "elapsed_seconds": round(time.time() - self.started, 3)}
        row["train_loss"] = float(logs["loss"]) if logs and "loss" in logs else float("nan")
        for split in ("validation", "test"):
            part = self.data.splits()[split]
            p = self._predict(part.x)
            row.update({f"{split}_{k}": v for k, v in self.figures(part.y, p).items()})
            if split == "test":
                self.test_probabilities = p
        self._write_scalars(step, row)
        self.rows.append(row)
        main = MAIN_FIGURE[self.data.kind]
        self.log(
            f"  step {step:>6}/{self.training.steps}  loss {row['train_loss']:.4f}  val {main} "
            f"{row[f'validation_{main}']:.4f}  test {main} {row[f'test_{main}']:.4f}  ({row['elapsed_seconds']:.1f}s)"
        )

    def _write_scalars(self, step: int, row: dict[str, float]) -> None:
        """The mean figures as TensorBoard scalars (`test/mean_iou`, ...)."""
        names = [k for k in row if k.startswith(("validation_", "test_")) and "_class_" not in k and "_label_" not in k]
        if self._events is None:
            self._events = instrument_events.ScalarEventFile(self.log_dir, [n.replace("_", "/", 1) for n in names])
        self._events.write_scalars(np.array([step]), np.asarray([[row[n] for n in names]], np.float32))

    def save_predictions(self, path: str) -> None:
        """The last test evaluation as a `.npz`: `y_true` (with the data's ignore label, if any), and `y_pred`
        (class ids of dense targets) or `scores` (multi-label probabilities), so a run's figures can be recomputed
        from its folder."""
        y, p = self.data.test.y, self.test_probabilities
        if self.data.kind == "multilabel":
            runs.write_npz(path, y_true=y, scores=p.astype(np.float32))
        else:
            runs.write_npz(path, y_true=y, y_pred=np.argmax(p, axis=-1).astype(np.int32))

    def close(self) -> None:
        """Closes the evaluations' TensorBoard event file."""
        if self._events is not None:
            self._events.close()
            self._events = None


def format_dense_summary(run_dir: str, summary: dict, curve) -> str:
    """The one-screen summary printed at the end of a dense or multi-label run: the test figures per class."""
    final = curve.iloc[-1]
    kind = summary["kind"]
    unit = "label" if kind == "multilabel" else "class"
    lines = [
        "",
        f"Run {os.path.basename(run_dir)}  ({summary['train_seconds']:.1f}s)",
        f"  data      {summary['dataset']} ({kind})  train {'positives' if unit == 'label' else 'pixels'} "
        f"{summary['class_counts']['train']}",
    ]
    figures = ("average_precision", "recall") if unit == "label" else ("iou", "dice", "average_precision", "recall")
    share = "positive_share" if unit == "label" else "pixel_share"
    lines.append(f"  {unit:<16}" + "".join(f"{f:>19}" for f in (*figures, share)))
    for c, name in enumerate(summary["class_names"]):
        values = [final.get(f"test_{f}_{unit}_{c}", np.nan) for f in (*figures, share)]
        lines.append(f"  {name[:16]:<16}" + "".join(f"{v:>19.4f}" for v in values))
    main = MAIN_FIGURE[kind]
    lines.append(f"  test {main} {final[f'test_{main}']:.4f} (best {curve[f'test_{main}'].max():.4f})")
    lines.append(f"  folder    {run_dir}  (tensorboard --logdir {os.path.dirname(run_dir)})")
    return "\n".join(lines)
