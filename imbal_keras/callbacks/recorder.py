"""Shared machinery: per-step rows recorded in the graph, read back into TensorBoard and pandas.

What a row holds, and its arithmetic, is defined once in `imbal_keras.callbacks.rows`; a `StepRecorder` stores,
reads back and logs rows, whichever path recorded them (the probe's train step, or seeds side by side through
`add_rows`).
"""

from __future__ import annotations

import os
import re

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from imbal_keras.callbacks import _keras_adapter, _labels, descriptions, events, probe, rows
from imbal_keras.errors import UserInputError

__all__ = ["StepRecorder"]

# Rows kept in the graph between two reads. A read costs one device sync, so reading every few
# hundred recorded steps keeps the callbacks off the critical path while still giving exact
# per-step values.
_BUFFER_ROWS = 256
# Each row starts with a stamp, (step mod _STAMP_PERIOD) + 1, so that a row the train step did not
# write (a step Keras counts without training, or one not yet written) is never read as that step's.
# Float32 holds these integers exactly even when summed over up to 16 replicas.
_STAMP_PERIOD = 2**20


class StepRecorder(keras.callbacks.Callback):
    """Records one row of numbers per (due) training step inside the compiled train step.

    Subclasses define the TensorBoard tags of their row (`_tags`), compute the raw row in the graph
    and turn raw rows into the logged columns (`_columns`). A DataFrame column is its tag with `/`
    replaced by `_`, so the TensorBoard layout and the CSV header are the same names.

    Rows are written into a (rows, values) variable inside the train step, at row `(step // n) %
    rows`, and read back every `rows` recorded steps and at the end of every epoch. The probe runs
    the recording only in the steps that are due, so the other steps cost nothing. Without a
    distribution strategy a row is one in-place scatter; under `tf.distribute` the variable is
    sync-on-read: each replica writes its own copy and reading aggregates them (`_aggregation`).
    A step whose row was not written in the graph (Keras counts one step without a batch at the
    end of each epoch of a dataset of unknown length) has no row.

    The recorder attaches to the model at the first batch, after every callback's `on_train_begin`
    has run, so a callback that rejects its arguments there leaves the model untouched.
    """

    needs_gradients = False
    # Recorders that read the labels infer the observed outputs and their classes from the model.
    _observes_labels = True
    # Recorders that read the train step's returned logs define `record_logs(step, logs)`.
    record_logs = None
    _aggregation = tf.VariableAggregation.SUM
    # TensorBoard events go to this sub-folder of log_dir, at the optimizer step plus this offset.
    _events_subdir = "train"
    _events_step_offset = 0

    def __init__(
        self,
        log_dir: str,
        *,
        every_n_steps: int,
        minority_class: int = 1,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        outputs: list[str] | None = None,
        ignore_class: int | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        _keras_adapter.check_supported(name)
        _check_log_dir(name, log_dir)
        _check_int(name, "every_n_steps", every_n_steps, minimum=1)
        _check_int(name, "minority_class", minority_class, minimum=0)
        if num_classes is not None:
            _check_int(name, "num_classes", num_classes, minimum=2)
        if class_names is not None:
            class_names = _checked_class_names(name, class_names, num_classes)
            num_classes = len(class_names)
        if outputs is not None and not (
            isinstance(outputs, (list, tuple)) and outputs and all(isinstance(o, str) for o in outputs)
        ):
            raise UserInputError(f"{name}: outputs must be a list of output names. Received: outputs={outputs!r}")
        if ignore_class is not None and (isinstance(ignore_class, bool) or not isinstance(ignore_class, int)):
            raise UserInputError(
                f"{name}: ignore_class must be an integer label. Received: ignore_class={ignore_class!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.every_n_steps = every_n_steps
        self.minority_class = minority_class
        self.num_classes = num_classes
        self.class_names = class_names
        self.outputs = None if outputs is None else list(outputs)
        self.ignore_class = ignore_class
        # The observed outputs (`_labels.Target`), known from the model at `_prepare`; until then, given K alone
        # (rows added from elsewhere, `add_rows`) means one output of one label per example.
        self._targets = (
            None
            if num_classes is None or outputs
            else [
                _labels.Target(
                    None, 0, num_classes, _labels.CLASSES, tuple(rows.class_labels(num_classes, class_names))
                )
            ]
        )
        self._events = None
        self._blocks = []
        self._keep_buffer = False
        # k of the optimizer's `gradient_accumulation_steps=k` (1 without): a row per batch, k batches per update.
        self._accumulation = 1

    def reuse(self, log_dir: str) -> None:
        """Starts over for another fit of the same model, logging into `log_dir`.

        The recorded rows are forgotten; the in-graph buffer is kept, so the step functions compiled for this
        recorder (see `probe.keep_compiled`) are used again instead of traced again. Warm grid runs use it.
        """
        _check_log_dir(type(self).__name__, log_dir)
        self.log_dir = os.fspath(log_dir)
        self._blocks = []
        self.close()
        self._keep_buffer = True

    def get_config(self) -> dict:
        return {
            "log_dir": self.log_dir,
            "every_n_steps": self.every_n_steps,
            "minority_class": self.minority_class,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "outputs": self.outputs,
            "ignore_class": self.ignore_class,
        }

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    # Subclass interface.

    @property
    def targets(self) -> tuple:
        """The observed outputs (`_labels.Target`: name, classes, kind), known once the model is built."""
        return tuple(self._targets or ())

    def _tags(self) -> list[str]:
        """TensorBoard tags of one logged row, in column order."""
        raise NotImplementedError

    def _raw_width(self) -> int:
        """Number of values recorded per step in the graph (after the stamp)."""
        raise NotImplementedError

    def _columns(self, raw: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Logged values (N, len(tags)) from raw rows (N, raw_width) of optimizer steps `steps` (N,)."""
        return raw

    # Results.

    def dataframe(self) -> pd.DataFrame:
        """One row per recorded step: `step` (optimizer step), `epoch`, then one column per tag.

        With `gradient_accumulation_steps=k` there is a row per batch: `step` counts batches (k per update, as
        the TensorBoard events do) and a column `optimizer_step` (step // k) after it names the update.
        """
        columns = [tag.replace("/", "_") for tag in self._tags_or_empty()]
        index = ["step", "optimizer_step"] if self._accumulation > 1 else ["step"]
        if not self._blocks:
            return pd.DataFrame(columns=[*index, "epoch", *columns])
        steps, epochs, values = (np.concatenate(parts) for parts in zip(*self._blocks, strict=True))
        table = {"step": steps, **({"optimizer_step": steps // self._accumulation} if self._accumulation > 1 else {})}
        table["epoch"] = epochs
        for j, (column, tag) in enumerate(zip(columns, self._tags(), strict=True)):
            # Counts and flags are whole numbers: integer columns.
            table[column] = values[:, j].astype(np.int64) if descriptions.is_integer(tag) else values[:, j]
        return pd.DataFrame(table)

    def to_csv(self, path: str) -> None:
        """Writes `dataframe()` to `path` (no index column)."""
        self.dataframe().to_csv(path, index=False)

    def _tags_or_empty(self) -> list[str]:
        return self._tags() if self._targets is not None else []

    # Keras hooks.

    def on_train_begin(self, logs=None):
        name = type(self).__name__
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            writable = os.access(self.log_dir, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            raise UserInputError(f"{name}: log_dir cannot be written. Received: log_dir={self.log_dir!r}")
        steps_per_execution = self.model.steps_per_execution
        self._rows = max(_BUFFER_ROWS, steps_per_execution)
        self._accumulation = _keras_adapter.accumulation_steps(self.model.optimizer)
        # Reading after this many calls, before the buffer wraps, keeps every recorded row.
        self._calls_per_read = self._rows * self.every_n_steps // steps_per_execution
        self._next_step = probe.batch_count(self.model)
        self._calls = 0
        self._epoch = 0
        self._attached = False
        self._prepared = False
        if _jax_probe() is not None:
            _jax_probe().check_supported(self)
        # A model that is not built yet (a subclassed model never called) is built from the first batch's spec
        # (`prepare`), just before its first step.
        if self.model.built:
            self._prepare()

    def prepare(self, element_spec) -> None:
        """Readies the recorder for batches like `element_spec` (the probe calls it before the first step).

        Builds a model that is not built yet as Keras would in its first step, so that the number of classes and
        the weights are known, then checks on the host that the labels can be read: labels that cannot are
        refused in one line before anything is traced.

        Args:
          element_spec: the `tf.TensorSpec`s of a batch `(x, y[, sample_weight])`, or None when unknown.

        Raises:
          UserInputError: labels the recorder cannot read, or classes that cannot be inferred.
        """
        if not self._prepared:
            if element_spec is not None and not self.model.built:
                _keras_adapter.build_from_spec(self.model, element_spec)
            self._prepare()
        if element_spec is not None and self._observes_labels:
            _, y, _ = keras.utils.unpack_x_y_sample_weight(element_spec)
            for target in self._targets:
                _labels.check_labels(_labels.select(y, target), target, type(self).__name__)

    def _prepare(self) -> None:
        """What needs the observed outputs and their classes (and subclasses: the model's weights): the checks, the
        row buffer."""
        name = type(self).__name__
        if self._observes_labels:
            request = _labels.Request(name, self.num_classes, self.class_names, self.outputs, self.ignore_class)
            self._targets = _labels.targets(self.model, request)
            if len(self._targets) == 1:
                self.num_classes = self._targets[0].num_classes
        smallest = min(t.num_classes for t in self._targets)
        if self.minority_class >= smallest:
            raise UserInputError(
                f"{name}: minority_class must be a class of the {smallest}-class model. "
                f"Received: minority_class={self.minority_class}"
            )
        self._zeroed_variable("_buffer", (self._rows, self._raw_width() + 1))
        self._prepared = True

    def _zeroed_variable(self, attribute: str, shape: tuple) -> None:
        """Sets `self.<attribute>` to a float32 variable of zeros of `shape` that the train step writes into.

        Under `tf.distribute` it is sync-on-read: each replica writes its own copy, reading aggregates them
        (`_aggregation`). A reused recorder (`reuse`) keeps its variables, so step functions compiled around them
        still write there; they are cleared, so a step that writes nothing is never read as written.
        """
        if _jax_probe() is not None:
            return  # On JAX the rows stay on the device until read (`_jax_probe.read_rows`): no variable.
        with self.model.distribute_strategy.scope():
            distributed = tf.distribute.has_strategy()
            kept = getattr(self, attribute, None)
            if self._keep_buffer and kept is not None and (distributed, shape) == (self._distributed, kept.shape):
                kept.assign(tf.zeros(shape, tf.float32))
                return
            self._distributed = distributed
            synchronization = (
                {"synchronization": tf.VariableSynchronization.ON_READ, "aggregation": self._aggregation}
                if distributed
                else {}
            )
            variable = tf.Variable(
                tf.zeros(shape, tf.float32),
                trainable=False,
                name=f"{type(self).__name__}{attribute}",
                **synchronization,
            )
            setattr(self, attribute, variable)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        # Counting here, not in on_train_batch_end, keeps Keras's async batch-end dispatch on.
        if not self._attached:
            (_jax_probe() or probe).attach(self.model, self)
            self._attached = True
        if self._calls == self._calls_per_read:
            self._read_rows()
        self._calls += 1

    def on_epoch_end(self, epoch, logs=None):
        self._read_rows()
        self.end_epoch(epoch)

    def on_train_end(self, logs=None):
        self._read_rows()
        (_jax_probe() or probe).detach(self.model, self)
        self.close()

    # Host side: rows recorded elsewhere (seeds side by side, `imbal_keras.training.side_by_side`) enter here too.

    def add_rows(self, steps: np.ndarray, raw: np.ndarray, *, epoch: int, logged: bool = False) -> None:
        """Takes the rows of optimizer steps `steps` (N,): raw rows (N, raw_width), or with `logged` the logged
        columns themselves (N, len(tags)); they join `dataframe()` and the TensorBoard events.

        Raises:
          UserInputError: rows the recorder rejects (`_columns`).
        """
        values = raw if logged else self._columns(raw, steps)
        self._blocks.append((steps, np.full(steps.size, epoch), values))
        if self._events is None:
            tags = self._tags()
            directory = os.path.join(self.log_dir, self._events_subdir)
            self._events = events.ScalarEventFile(directory, tags, [descriptions.describe(tag) for tag in tags])
            if any("class_" in tag for tag in tags):
                self._events.write_summary(0, descriptions.layout_summary(self._targets))
        self._events.write_scalars(steps + self._events_step_offset, values)

    def end_epoch(self, epoch: int) -> None:
        """What an epoch's end writes once its rows are in (the events are flushed)."""
        if self._events is not None:
            self._events.flush()

    def close(self) -> None:
        """Closes the TensorBoard event file."""
        if self._events is not None:
            self._events.close()
            self._events = None

    # In-graph recording (called by the probe while tracing the train step).

    def _record(self, step: tf.Tensor, compute_row) -> None:
        """Writes the row `compute_row()` returns as the row of `step`: a list of scalars or of 1-D tensors
        (concatenated, raw_width values in all).

        The probe calls this in due steps only, unless one call runs several steps
        (`steps_per_execution > 1`): then a `tf.cond` computes the row in due steps. The stamp, the parts and
        the write take as few graph ops as they can, since composition runs in every step.
        """

        def write():
            stamp = tf.cast(step % _STAMP_PERIOD + 1, tf.float32)
            parts = [tf.cast(part, tf.float32) for part in compute_row()]
            if all(part.shape.rank == 0 for part in parts):
                row = tf.stack([stamp, *parts])
            else:
                row = tf.concat([stamp[None], *parts], axis=0)
            index = self._row_index(step) % self._rows
            if self._distributed:
                # Sync-on-read variables have no scatter_update; rewriting the small buffer is cheap.
                self._buffer.assign(tf.tensor_scatter_nd_update(self._buffer, index[None, None], row[None]))
            else:
                self._buffer.scatter_update(tf.IndexedSlices(row, index))
            return tf.constant(True)

        if self.every_n_steps == 1 or self.model.steps_per_execution == 1:
            write()
        else:
            tf.cond(probe.is_due(step, self.every_n_steps, self._accumulation), write, lambda: tf.constant(False))

    def _row_index(self, step):
        """How many due batches came before batch `step` (an int, array or tensor), which is due."""
        if self.every_n_steps == 1:
            return step
        k = self._accumulation
        return step // (k * self.every_n_steps) * k + step % k

    # Reading back.

    def _read_rows(self) -> None:
        self._calls = 0
        if not self._prepared:
            return
        steps, recorded = self._read_buffer() if _jax_probe() is None else _jax_probe().read_rows(self)
        if not steps.size:
            return
        try:
            self.add_rows(steps, recorded, epoch=self._epoch)
        except UserInputError:
            (_jax_probe() or probe).restore(self.model)  # fit stops here without calling on_train_end
            raise

    def _read_buffer(self) -> tuple[np.ndarray, np.ndarray]:
        """The steps recorded in the graph since the last read and their raw rows (without the stamp)."""
        end = probe.batch_count(self.model)
        steps = np.arange(self._next_step, end, dtype=np.int64)
        steps = steps[probe.is_due(steps, self.every_n_steps, self._accumulation)]
        self._next_step = end
        if not steps.size:
            return steps, np.zeros((0, self._raw_width()), np.float32)
        strategy = self.model.distribute_strategy
        with strategy.scope():
            buffer = self._buffer.read_value().numpy()
        recorded = buffer[self._row_index(steps) % self._rows]
        summed = self._distributed and self._aggregation == tf.VariableAggregation.SUM
        copies = strategy.num_replicas_in_sync if summed else 1
        written = recorded[:, 0] == copies * (steps % _STAMP_PERIOD + 1)
        return steps[written], recorded[written, 1:]


def _jax_probe():
    """The JAX backend's probe module, or None on TensorFlow (imported on JAX only: a TensorFlow install may lack
    jax)."""
    if keras.backend.backend() != "jax":
        return None
    from imbal_keras.callbacks import _jax_probe as jax_probe

    return jax_probe


def _check_log_dir(callback_name: str, log_dir) -> None:
    if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
        raise UserInputError(f"{callback_name}: log_dir must be a directory path. Received: log_dir={log_dir!r}")


def _checked_class_names(callback_name: str, class_names, num_classes: int | None) -> list[str]:
    names = list(class_names) if isinstance(class_names, (list, tuple)) else None
    valid = (
        names is not None
        and len(names) >= 2
        and len(set(names)) == len(names)
        and all(isinstance(n, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", n) for n in names)
        and (num_classes is None or len(names) == num_classes)
    )
    if not valid:
        raise UserInputError(
            f"{callback_name}: class_names must be a list of at least 2 distinct names of letters, digits, '_', '.' "
            f"or '-', one per class. Received: class_names={class_names!r}"
        )
    return names


def _check_int(callback_name: str, argument: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserInputError(
            f"{callback_name}: {argument} must be an integer >= {minimum}. Received: {argument}={value!r}"
        )
