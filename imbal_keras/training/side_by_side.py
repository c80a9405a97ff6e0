"""Runs side by side: runs of equal shapes trained together in one compiled step.

The runs of a grid mostly differ in their seeds, data seeds and strategies, not in the shapes of their models
and batches. For a small model a train step costs about the number of graph ops it runs, not their size, so R
runs whose weights are stacked along a leading axis train in one step of batched ops for much less than R steps:
a stack of Dense layers as batched matrix products, (R, fan_in, units) per layer; any other model (the CNN, the
MLP over categorical columns, a model function's) through its own call mapped over the replicas' weights and
batches (`tf.vectorized_map` of `stateless_call`). Each replica keeps everything of its own: its initial weights
(from its own initialisation seed, as a one-run build gives them), its data and pipeline (its own data seed,
strategy and order seed; `imbal_keras.training.replicas`, which keeps stacked pipelines between packs with the
seeds as inputs), its initial output bias (found for the pack at once, `initialization.initial_output_biases`,
equal to each run's own), its loss (its strategy's, reduced over its own batch), its optimizer slots (SGD and
Adam are element-wise, so stacked variables update each replica as its own run would), its per-step
instrumentation and its evaluations (every replica's metrics at once, `experiment.evaluate_replicas`). The
replicas' losses are summed before differentiating; since no weight is shared, each replica's gradient is its
own loss's.

`run_pack(configs)` writes one run folder per config, with the same files, columns and summaries as
`experiment.run`, through the same pieces (`experiment.setup`, `experiment.Evaluator`, `experiment.finish`) and
recorders (`StepRecorder.add_rows`); the replicas compute their rows and reduce their losses with the functions of
`imbal_keras.callbacks.rows`, as the one-run path's recorders do. `seconds` in result.json are the pack's divided by
R. Results equal the one-run path's to float rounding (batched and single products may round differently;
tests/side_by_side_test.py and tests/side_by_side_models_test.py state the tolerance). `imbal_keras.training.plan.
plan_pack` decides whether a pack can train this way; when it cannot, `run_pack` returns the reason and the grid
runs the configs one by one (`imbal_keras.grid.launch`), and says why once.

What it supports: a functional or sequential model with one input and one output whose output is a sigmoid or
softmax, without state that is not trained (no Dropout, no BatchNormalization) and without losses of its own; a
strategy that needs no callbacks during training but one that binds its loss to the step counter (deferred
re-weighting: the pack binds its own counter) and whose loss is a per-example Keras loss with an additive
reduction; data with one label per example (tables and images, not masks, sequences or multi-label targets);
the run's SGD or Adam; the default instrumentation (batch composition, per-class gradients, per-batch loss); and
the gradient-noise diagnostics (`diagnose_every`: each replica's own, at its weights, through a one-run model of
its loss loaded with them; calls end at every diagnosed step, as the one-run path diagnoses between steps).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from imbal_keras import models, runs, strategies
from imbal_keras.callbacks import BatchComposition, GradientNoise, PerClassGradients, rows
from imbal_keras.callbacks.step_loss import StepLoss
from imbal_keras.config import ExperimentConfig
from imbal_keras.data import splits
from imbal_keras.errors import check
from imbal_keras.training import chains, experiment, fitting, initialization, plan, replicas
from imbal_keras.training.warm import Entry, WarmModels, snapshot_optimizer, steps_per_call

__all__ = ["run_pack"]


@dataclasses.dataclass(frozen=True)
class _PackShape:
    """What a compiled pack's variables and traced step depend on, besides its optimizer and loss.

    Attributes:
      sizes: (fan_in, units) of each Dense layer of a stacked Dense network; else every trainable variable's shape.
      activations: each Dense layer's activation name (`plan.HIDDEN_ACTIVATIONS`, then
        `plan.OUTPUT_ACTIVATIONS`); else the output's alone.
      network: `dense` for a stack of Dense layers (`plan.stacked_dense`); `chain ...` for a chain of
        convolutions (`chains.chain_steps`); else what the model's call depends on (the model, its steps' types
        and variable shapes), mapped over the replicas.
      replicas: R.
      num_classes: K.
      steps_per_call: optimizer steps per compiled call (rows of the step buffers).
      gradient_every: record the per-class gradients every this many steps (0: never).
      log_composition: record the batch composition.
    """

    sizes: tuple[tuple[int, ...], ...]
    activations: tuple[str, ...]
    network: str
    replicas: int
    num_classes: int
    steps_per_call: int
    gradient_every: int
    log_composition: bool


def _activation_function(name: str) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """The TensorFlow function of a packed layer's activation (None for linear)."""
    return None if name == "linear" else getattr(tf.nn, name)


class _PackModel(keras.Model):
    """R copies of a network with stacked weights and a train step that records each replica's instrumentation.

    A stack of Dense layers runs as batched matrix products; any other model (`template`) runs its own call
    (`stateless_call`) mapped over the replicas' weights and batches by `tf.vectorized_map`, which turns it
    into batched ops as well. Either way the replicas' logits come out stacked, (R, B, units).

    Buffers hold one row per step of the current call, per replica: the batch composition
    (`rows.composition_row`), the batch loss, and in due steps the per-class gradient row (`rows.gradient_row`).

    Args:
      shape: the layers, replicas, classes and recording settings.
      loss_groups: (loss, replicas) in replica order: each run of consecutive replicas reduces its batches with
        its strategy's per-example Keras loss (with an additive reduction, `plan.plan_pack`).
      optimizer: the runs' optimizer (one for all replicas: its slots are per element).
      template: a built replica whose call maps over the replicas (`shape.network` not `dense`), else None.
    """

    def __init__(self, shape: _PackShape, *, loss_groups: Sequence[tuple[keras.losses.Loss, int]],
                 optimizer: keras.optimizers.Optimizer, template: keras.Model | None = None):  # fmt: skip
        super().__init__()
        self.shape, self.loss_groups = shape, list(loss_groups)
        self.replicas, self.num_classes, self.rows = shape.replicas, shape.num_classes, shape.steps_per_call
        self.gradient_every, self.log_composition = shape.gradient_every, shape.log_composition
        # Every layer's activation function (None for linear); the output's is applied by `probabilities`.
        self.activations = [_activation_function(name) for name in shape.activations]
        self.stacked = []
        # A bound method, which Keras does not track: the template's own variables stay out of this model's.
        self.template_call = None if template is None else template.stateless_call
        self.input_rank = None if template is None else len(template.inputs[0].shape)
        self.chain = chains.chain_steps(template) if shape.network.startswith("chain") else None
        for i, size in enumerate(shape.sizes):
            if template is not None:
                self.stacked.append(self.add_weight(shape=(shape.replicas, *size), initializer="zeros", name=f"w_{i}"))
                continue
            fan_in, units = size
            kernel = self.add_weight(shape=(shape.replicas, fan_in, units), initializer="zeros", name=f"kernel_{i}")
            bias = self.add_weight(shape=(shape.replicas, 1, units), initializer="zeros", name=f"bias_{i}")
            self.stacked += [kernel, bias]
        k = shape.num_classes
        self.composition = self._buffer("composition_rows", len(rows.composition_raw_tags(k)))
        self.losses_rows = self._buffer("loss_rows", 1)
        self.gradient_rows = self._buffer("gradient_rows", len(rows.gradient_tags(k)))
        # Each replica's loss reduction (`rows.REDUCTION_CODES`), set per pack: packs whose losses differ only in
        # their reductions share one traced step.
        self.reduction_codes = self.add_weight(shape=(shape.replicas,), initializer="zeros", dtype="int32",
                                               trainable=False, name="reduction_codes")  # fmt: skip
        self.built = True
        self.compile(optimizer=optimizer, steps_per_execution=shape.steps_per_call)
        self.optimizer.build(self.trainable_variables)

    def _buffer(self, name: str, width: int) -> keras.Variable:
        """A (steps per call, R, width) buffer of rows, one per step of a call."""
        return self.add_weight(shape=(self.rows, self.replicas, width), initializer="zeros", trainable=False,
                               name=name)  # fmt: skip

    def set_replicas(self, weights: list[list[np.ndarray]], reductions: Sequence[str]) -> None:
        """Loads each replica's initial weights (a one-run model's `get_weights()` each) and its loss's reduction."""
        for i, variable in enumerate(self.stacked):
            variable.assign(np.stack([w[i].reshape(variable.shape[1:]) for w in weights]).astype(np.float32))
        self.reduction_codes.assign(np.array([rows.REDUCTION_CODES[r] for r in reductions], np.int32))

    def logits(self, x: tf.Tensor, *, training: bool = True) -> tf.Tensor:
        """(R, B, units) logits of inputs (R, B, ...), or of (B, ...) shared by every replica."""
        if self.chain is not None:
            return chains.chain_logits(self.chain, [v.value for v in self.stacked], x, self.replicas)
        if self.template_call is not None:
            return self._mapped_logits(x, training)
        h = x
        for i, activation in enumerate([*self.activations[:-1], None]):
            kernel, bias = self.stacked[2 * i], self.stacked[2 * i + 1]
            # (B, D) @ (R, D, U) broadcasts to (R, B, U); (R, B, D) @ (R, D, U) is a batched product.
            h = tf.matmul(h, kernel) + bias
            if activation is not None:
                h = activation(h)
        return h

    def _mapped_logits(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """The template's logits (its output's, before the sigmoid or softmax) per replica, through its own call
        vectorized over the replicas' weights (and batches, when each has its own)."""
        call, count, own = self.template_call, len(self.stacked), x.shape.rank > self.input_rank

        def one(args):
            inputs = args[count] if own else x
            outputs, _ = call(list(args[:count]), [], inputs, training=training)
            return outputs._keras_logits  # set by Keras's sigmoid and softmax (`plan.plan_pack` checks the output)

        values = [v.value for v in self.stacked]
        return tf.vectorized_map(one, (*values, x) if own else tuple(values))

    def probabilities(self, logits: tf.Tensor) -> tf.Tensor:
        """The output activation (sigmoid or softmax) of logits."""
        return self.activations[-1](logits)

    def _replica_losses(self, logits, y, sample_weight):
        """Per-replica losses (R,), the weighted per-example values (R, B) and the divisors (R,): each replica's
        loss's per-example values on its batch, reduced per replica as `Loss.__call__` reduces a batch
        (`rows.reduce_loss`); replicas of one loss are computed together."""
        parts, start = [], 0
        for fn, count in self.loss_groups:
            stop = start + count
            weights = None if sample_weight is None else sample_weight[start:stop]
            codes = self.reduction_codes[start:stop]
            parts.append(self._group_losses(fn, logits[start:stop], y[start:stop], weights, codes))
            start = stop
        if len(parts) == 1:
            return parts[0]
        return tuple(tf.concat([part[i] for part in parts], axis=0) for i in range(3))

    def _group_losses(self, fn, logits, y, sample_weight, codes):
        """`_replica_losses` for the replicas of one loss `fn` (whatever its reduction: each replica reduces by its
        own code, `codes`)."""
        r, b = logits.shape[0], tf.shape(y)[1]
        if getattr(fn, "couples_batch", False):  # an example's value depends on its batch: each replica's own
            values = tf.concat([self._loss_values(fn, logits[i], y[i]) for i in range(r)], axis=0)
        else:
            values = self._loss_values(fn, tf.reshape(logits, [-1, logits.shape[-1]]), tf.reshape(y, [-1]))
        return rows.reduce_loss_by_code(codes, tf.reshape(values, [r, b]), sample_weight)

    def _loss_values(self, fn, logits, y):
        """The loss `fn`'s per-example values (N,) for logits (N, units) and labels (N,)."""
        probabilities = self.probabilities(logits)
        probabilities._keras_logits = logits  # Keras's cross-entropies read these, as behind a Dense output
        values = fn.call(tf.cast(y, fn.dtype), tf.cast(probabilities, fn.dtype))
        if values.shape.rank > 1:
            values = tf.reduce_sum(values, axis=list(range(1, values.shape.rank)))
        return values

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        step = tf.convert_to_tensor(self.optimizer.iterations)
        if not self.gradient_every:
            return self._step(x, y, sample_weight, step, record=False)
        if self.gradient_every == 1:
            return self._step(x, y, sample_weight, step, record=True)
        return tf.cond(
            tf.equal(step % self.gradient_every, 0),
            lambda: self._step(x, y, sample_weight, step, record=True),
            lambda: self._step(x, y, sample_weight, step, record=False),
        )

    def _step(self, x, y, sample_weight, step, *, record: bool):
        variables = self.trainable_variables
        with tf.GradientTape(persistent=record) as tape:
            logits = self.logits(x)
            losses, values, divisor = self._replica_losses(logits, y, sample_weight)
            total = tf.reduce_sum(losses)
        gradients = tape.gradient(total, variables)
        before = [tf.identity(v.value) for v in variables] if record else None
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        index = [[step % self.rows]]
        self._write(self.losses_rows, index, losses[:, None])
        if not (self.log_composition or record):
            return {"loss": tf.reduce_mean(losses)}
        one_hot = tf.one_hot(tf.cast(y, tf.int32), self.num_classes, dtype=tf.float32)  # (R, B, K)
        composition = rows.composition_row(one_hot, sample_weight)
        if self.log_composition:
            self._write(self.composition, index, tf.concat(composition, axis=-1))
        if record:
            counts = composition[1]
            per_class = self._per_class_gradients(tape, logits, total, gradients, one_hot, counts)
            update = self._flatten([v.value for v in variables]) - self._flatten(before)
            class_losses = rows.class_losses(values, one_hot, divisor)
            loss_parts = tf.concat([losses[:, None], tf.zeros([self.replicas, 1]), class_losses], axis=1)
            row = rows.gradient_row(per_class, self._flatten(gradients), None, update, loss_parts, counts)
            self._write(self.gradient_rows, index, tf.concat(row, axis=-1))
        return {"loss": tf.reduce_mean(losses)}

    @staticmethod
    def _write(buffer, index, row):
        buffer.assign(tf.tensor_scatter_nd_update(buffer.value, index, tf.cast(row, tf.float32)[None]))

    def _flatten(self, tensors) -> tf.Tensor:
        """Per-replica tensors (R, ...) as one (R, P) float32 matrix."""
        return tf.concat([tf.reshape(tf.cast(t, tf.float32), [self.replicas, -1]) for t in tensors], axis=1)

    def _per_class_gradients(self, tape, logits, total, gradients, one_hot, counts):
        """Each replica's per-class gradients (R, K, P), as `PerClassGradients` splits them (`rows`).

        A class's gradient is the loss's output gradient masked to the class's rows, back-propagated (a class
        without examples in a replica's batch gets exactly 0); the class with the most examples is the total
        minus the others.
        """
        output_gradient = tape.gradient(total, logits)
        order = rows.class_order(counts)
        masks = rows.class_masks(one_hot, order)
        others = [
            self._flatten(tape.gradient(logits, self.trainable_variables,
                                        output_gradients=output_gradient * masks[:, :, i : i + 1]))
            for i in range(1, self.num_classes)
        ]  # fmt: skip
        return rows.per_class_gradients(self._flatten(gradients), others, order)


class _Replica:
    """One run of a pack while it trains: its member, staging folder, recorders and evaluator."""

    def __init__(self, member: replicas.Member, staging: str, started: float, log, *,
                 diagnosed: Callable | None = None, diagnosis_loss=None):  # fmt: skip
        config, data, setup = member.config, member.data, member.setup
        self.member, self.config, self.staging, self.setup = member, config, staging, setup
        counts = setup.ctx.class_counts
        k, minority = data.num_classes, setup.minority
        self.loss = StepLoss(staging)
        output = config.output
        self.composition = (
            BatchComposition(staging, minority_class=minority, num_classes=k) if output.log_composition else None
        )
        self.gradients = (
            PerClassGradients(staging, every_n_steps=output.gradient_every_n_steps, minority_class=minority,
                              num_classes=k)
            if output.gradient_every_n_steps
            else None
        )  # fmt: skip
        self.instrumentation = [c for c in (self.composition, self.gradients) if c is not None]
        self.noise = experiment.gradient_noise(
            config,
            setup.strategy,
            setup.ctx,
            data,
            staging,
            callback=_ReplicaNoise,
            diagnosed=diagnosed,
            loss=diagnosis_loss,
        )
        self.evaluator = experiment.Evaluator(
            data, config.training, staging, log, started, prior=counts / counts.sum(), functions={}
        )
        self.epoch_losses: list[float] = []


class _ReplicaNoise(GradientNoise):
    """A replica's gradient-noise diagnostics: the pack's fit drives its hooks (steps, epochs); a diagnosis reads
    the model `diagnosed()` returns, a one-run model loaded with the replica's current weights."""

    def __init__(self, *args, diagnosed: Callable[[], keras.Model], **kwargs):
        super().__init__(*args, **kwargs)
        self._diagnosed = diagnosed

    def diagnosed_model(self) -> keras.Model:
        return self._diagnosed()


class _Diagnosed:
    """The one-run models the replicas' diagnostics read: one per loss (a diagnosis program is traced per model
    and loss, so replicas of one loss share one), each loaded with a replica's current weights when asked."""

    def __init__(self, pack: _PackModel, first: replicas.Member, first_model: keras.Model, log):
        self.pack, self.log = pack, log
        self._models = {first.loss_key: first_model}

    def model(self, member: replicas.Member, index: int) -> keras.Model:
        model = self._models.get(member.loss_key)
        if model is None:
            model = self._models[member.loss_key] = member.setup.build_model(member.config, member.data, self.log)
        for variable, stacked in zip(model.trainable_variables, self.pack.stacked, strict=True):
            variable.assign(tf.reshape(stacked[index], variable.shape))
        return model


class _PackCallback(keras.callbacks.Callback):
    """Reads the pack's buffers after every call into each replica's recorders, and evaluates every replica at
    the end of every epoch (all replicas in one forward pass per split)."""

    def __init__(self, pack: _PackModel, members: list[_Replica], forward: Callable, inputs: tuple):
        super().__init__()
        self.pack, self.replicas, self.forward, self.inputs = pack, members, forward, inputs
        self._next = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        for replica in self.replicas:
            replica.epoch_losses = []

    def on_train_batch_end(self, batch, logs=None):
        end = int(self.pack.optimizer.iterations.numpy())
        steps = np.arange(self._next, end, dtype=np.int64)
        self._next = end
        rows = steps % self.pack.rows
        losses = self.pack.losses_rows.numpy()[rows, :, 0]
        composition = self.pack.composition.numpy()[rows] if self.pack.log_composition else None
        every = self.pack.gradient_every
        due = steps % every == 0 if every else np.zeros(steps.size, bool)
        gradients = self.pack.gradient_rows.numpy()[rows[due]] if due.any() else None
        for r, replica in enumerate(self.replicas):
            replica.loss.add_rows(steps, losses[:, r, None].astype(np.float64), epoch=self._epoch, logged=True)
            replica.epoch_losses += losses[:, r].tolist()
            if composition is not None:
                replica.composition.add_rows(steps, composition[:, r], epoch=self._epoch)
            if gradients is not None:
                replica.gradients.add_rows(steps[due], gradients[:, r], epoch=self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        validation, test = (self.forward(x) for x in self.inputs[:2])
        # Keras's logged loss at an epoch's end: the mean of the epoch's batch losses.
        train_losses = [float(np.mean(r.epoch_losses)) if r.epoch_losses else float("nan") for r in self.replicas]
        count = len(self.replicas)  # the pack's first replicas: twins (`run_pack(pad_to=)`) come after them
        evaluators = [r.evaluator for r in self.replicas]
        experiment.evaluate_replicas(evaluators, epoch, validation[:count], test[:count], train_losses)
        for replica in self.replicas:
            for recorder in (replica.loss, *replica.instrumentation):
                recorder.end_epoch(epoch)


def _forward(pack: _PackModel, functions: dict, inputs: tuple) -> Callable[[np.ndarray], np.ndarray]:
    """Every replica's probabilities (R, N, units) for shared inputs (N, ...) or the replicas' own (R, N, ...)
    (`replicas.evaluation_inputs`), through one traced function."""
    validation, _, stacked = inputs
    name = "forward stacked" if stacked else "forward"
    input_shape = validation.shape[2:] if stacked else validation.shape[1:]
    function = functions.get(name)
    if function is None:
        leading = (pack.replicas, None) if stacked else (None,)
        signature = [tf.TensorSpec((*leading, *input_shape), tf.float32)]
        function = tf.function(lambda x: pack.probabilities(pack.logits(x, training=False)),
                               input_signature=signature)  # fmt: skip
        functions[name] = function
    chunk = experiment.prediction_rows(int(np.prod(input_shape)) * pack.replicas)
    if stacked:
        return lambda x: np.concatenate(
            [function(x[:, i : i + chunk]).numpy() for i in range(0, x.shape[1], chunk)], axis=1
        )
    return lambda x: np.concatenate([function(x[i : i + chunk]).numpy() for i in range(0, len(x), chunk)], axis=1)


def _initial_weights(members: list[replicas.Member], first_model, log, kept: dict | None) -> list[list[np.ndarray]]:
    """Every replica's initial weights (its model's trainable variables, in order): drawn from the built-in
    MLP's initialisers (`models.mlp_weights`) when they give the first replica's built model exactly, else from
    a model built per replica (as its one-run build gives them). With `kept` (a worker's, between packs), a
    replica whose weights but the output bias equal a model built before (`models.initial_weights_key`: the same
    seed and model arguments, another strategy, say) takes those, with its own output bias."""
    first_weights = [v.numpy() for v in first_model.trainable_variables]

    def drawn(member):
        config, setup, data = member.config, member.setup, member.data
        return models.mlp_weights(
            data.train.x.shape[1], data.num_classes, hidden_units=config.model.hidden_units,
            training_distribution=setup.training_distribution, output_bias=setup.output_bias,
            zero_output_kernel=config.model.zero_output_kernel, seed=setup.init_seed,
        )  # fmt: skip

    first = members[0]
    same = plan.stacked_dense(first_model) and first.config.model.model in ("auto", "mlp")
    if same and _equal(drawn(first), first_weights):
        return [first_weights, *[drawn(m) for m in members[1:]]]
    kept = {} if kept is None else kept
    bias_index = models.output_bias_index(first_model, first.data.num_classes)
    weights = []
    for m in members:
        config, setup = m.config, m.setup
        key = models.initial_weights_key(
            config.model.model, m.data, hidden_units=config.model.hidden_units,
            training_distribution=setup.training_distribution, zero_output_kernel=config.model.zero_output_kernel,
            seed=setup.init_seed,
        )  # fmt: skip
        if key in kept:
            own = list(kept[key])
            if bias_index is not None:
                bias = models.initial_output_values(m.data.num_classes, setup.training_distribution, setup.output_bias)
                own[bias_index] = bias.astype(np.float32).reshape(own[bias_index].shape)
        else:
            own = (
                first_weights
                if m is first
                else [v.numpy() for v in setup.build_model(config, m.data, log).trainable_variables]
            )
            if len(kept) >= _KEPT_WEIGHTS:
                del kept[next(iter(kept))]
            kept[key] = own
        weights.append(own)
    return weights


# Initial weights a worker keeps between packs (`_initial_weights`), the oldest dropped first.
_KEPT_WEIGHTS = 64


def _equal(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def run_pack(
    configs: Sequence[ExperimentConfig],
    *,
    warm: WarmModels | None = None,
    log: Callable[[str], None] | None = None,
    data_options: tf.data.Options | None = None,
    pad_to: int = 0,
) -> list[experiment.RunResult] | str:
    """Trains `configs` (equal `config.key("pack")`) side by side and writes their run folders.

    Args:
      configs: the runs; they may differ in their training seeds, data seeds, strategies and strategy parameters
        (each replica reads its own data through its own pipeline and reduces its own loss).
      warm: a cache of compiled models (`imbal_keras.training.warm`): a pack of a shape seen before reuses its
        compiled step. None builds everything.
      log: where progress lines go; None is silent.
      data_options: `tf.data.Options` applied to the stacked training pipeline.
      pad_to: train at least this many replicas: twins of the last replica (in training order) fill the pack
        and their results are dropped. Replicas share no weight and no batch, so a twin changes no other
        replica's numbers; with `warm`, packs of a grid that differ in size by a few runs then share one traced
        step, which costs more than a replica's share of a step (`imbal_keras.grid.sweep.pack_sizes`).

    Returns:
      One `RunResult` per config, in order; or, when the pack cannot train side by side (`plan.plan_pack`), the
      reason (nothing is written then and the caller runs the configs one by one).

    Raises:
      UserInputError: a bad config, dataset or output folder (nothing is written).
    """
    configs = list(configs)
    check(
        len({c.key("pack") for c in configs}) == 1,
        "configs of one pack may differ only in their seeds, data seeds and strategies (equal key('pack'))",
        argument="configs",
    )
    for config in configs:
        config.validate()
    for config in configs:
        path = plan.plan_pack(config, len(configs))
        if path.mode != "packed":
            return path.reason
    started = time.time()
    loaded = [experiment.load_data(c, warm) for c in configs]
    path = plan.plan_pack(configs[0], len(configs), data=[data for data, _ in loaded])
    if path.mode != "packed":
        return path.reason
    stagings = []
    try:
        for config in configs:
            stagings.append(runs.stage(config.output.output_dir, config.output.run_name or config.default_run_name()))
        pack = _Pack(configs, loaded, stagings, started, log or (lambda _: None), data_options, warm, pad_to)
        results = _train(pack)
        if isinstance(results, str):
            return results
        for result in results:
            config = result.config
            result.run_dir = runs.publish(result.run_dir, config.output.output_dir,
                                          config.output.run_name or config.default_run_name())  # fmt: skip
            result.summary["run_dir"] = result.run_dir
        return results
    finally:
        for staging in stagings:
            shutil.rmtree(staging, ignore_errors=True)


@dataclasses.dataclass
class _Pack:
    """The arguments of a pack's training (`run_pack`), past validation and data loading."""

    configs: list[ExperimentConfig]
    loaded: list[tuple[splits.Data, tuple[float, ...]]]
    stagings: list[str]
    started: float
    log: Callable[[str], None]
    data_options: tf.data.Options | None
    warm: WarmModels | None
    pad_to: int = 0


def _members(pack: _Pack) -> list[replicas.Member]:
    """The pack's replicas in training order (`replicas.arrange`), each with its setup and loss."""
    setups = [
        experiment.setup(config, data, target, pack.data_options, pipeline=False, bias=False)
        for config, (data, target) in zip(pack.configs, pack.loaded, strict=True)
    ]
    biases = initialization.initial_output_biases(
        [(s.strategy, s.ctx, d.train.y) for s, (d, _) in zip(setups, pack.loaded, strict=True)],
        cache=None if pack.warm is None else pack.warm.biases,
    )
    data_keys = replicas.data_keys([data for data, _ in pack.loaded])
    members = []
    for i, (config, (data, target)) in enumerate(zip(pack.configs, pack.loaded, strict=True)):
        setup = dataclasses.replace(setups[i], output_bias=biases[i])
        loss = strategies.build_loss(setup.strategy, setup.ctx)
        loss_key = replicas.loss_key(loss, config, data)
        members.append(replicas.Member(i, config, data, target, setup, loss, loss_key, data_keys[i]))
    return replicas.arrange(members)


def _train(pack: _Pack) -> list[experiment.RunResult] | str:
    """Trains a pack and finishes its runs (in the configs' order), or says why its built model, losses or data
    cannot train side by side."""
    members, log = _members(pack), pack.log
    first = members[0]
    first_model = first.setup.build_model(first.config, first.data, log)
    data = [m.data for m in members]
    for m in members:
        path = plan.plan_pack(m.config, len(members), model=first_model if m is first else None, loss=m.loss,
                              data=data)  # fmt: skip
        if path.mode != "packed":
            return path.reason
    weights = _initial_weights(members, first_model, log, None if pack.warm is None else pack.warm.initial_weights)
    # Twins of the last replica up to `pad_to` (`run_pack`): at the end, so every loss and pipeline stays one
    # slice of the pack and the real replicas keep their places.
    twins = [members[-1]] * max(pack.pad_to - len(members), 0)
    weights += [weights[-1]] * len(twins)
    trains = [*members, *twins]
    if pack.warm is not None and pack.warm.pipelines is None:
        pack.warm.pipelines = replicas.Pipelines()
    dataset = replicas.stacked_dataset(members, pack.data_options, pack.warm.pipelines if pack.warm else None)
    dataset = replicas.with_twins(dataset, len(twins))
    entry = _compiled_pack(pack, trains, first_model, dataset)
    entry.model.set_replicas(weights, [m.loss.reduction for m in trains])
    entry.reset_optimizer()
    for m in members:  # deferred re-weighting (also in the diagnostics): the pack's counter counts every replica's
        if hasattr(m.loss, "bind_step"):
            m.loss.bind_step(entry.model.optimizer.iterations)
    diagnosed = _Diagnosed(entry.model, first, first_model, log)
    heads = {m.loss_key: m.loss for m, _ in replicas.loss_groups(members)}
    trained = []
    for r, m in enumerate(members):
        staging = pack.stagings[m.index]
        runs.write_text(os.path.join(staging, runs.CONFIG_FILE), m.config.to_json())
        experiment.log_start(m.config, m.data, m.setup, log)
        # Its group's loss: the same per-example values as its own (a loss key says so), one program per group.
        trained.append(_Replica(m, staging, pack.started, log, diagnosed=lambda m=m, r=r: diagnosed.model(m, r),
                                diagnosis_loss=heads[m.loss_key]))  # fmt: skip
    fit_started = time.time()
    _fit(entry, trained, dataset, replicas.evaluation_inputs(trains), first.config.training)
    results = {r.member.index: _finish(pack, r, path, fit_started) for r in trained}
    return [results[i] for i in range(len(members))]


def _fit(entry: Entry, trained: list[_Replica], dataset: tf.data.Dataset, inputs: tuple, training) -> None:
    """Fits the pack for the step budget, feeding each replica's recorders and evaluations (closed at the end)."""
    model = entry.model
    callback = _PackCallback(model, trained, _forward(model, entry.functions, inputs), inputs)
    noise = [n for replica in trained for n in replica.noise]
    try:
        fitting.fit_for_budget(model, dataset, training, [callback, *noise])
    finally:
        for replica in trained:
            replica.evaluator.close()
            for recorder in (replica.loss, *replica.instrumentation):
                recorder.close()


def _finish(pack: _Pack, replica: _Replica, path: plan.Plan, fit_started: float) -> experiment.RunResult:
    """Writes one replica's run into its staging folder (`experiment.finish`), with its share of the seconds."""
    member = replica.member
    trained = experiment.TrainedRun(
        member.config,
        member.data,
        member.target,
        member.setup,
        replica.staging,
        replica.evaluator,
        replica.instrumentation,
        noise=replica.noise,
        path=path,
        started=pack.started,
        fit_started=fit_started,
        share=1 / len(pack.configs),
    )
    return experiment.finish(trained)


def _network(model: keras.Model, config: ExperimentConfig) -> tuple[tuple, tuple[str, ...], str]:
    """A pack's `_PackShape.sizes`, `activations` and `network` for replicas of `model`."""
    if plan.stacked_dense(model):
        layers = plan.dense_layers(model)
        return tuple(tuple(layer.kernel.shape) for layer in layers), tuple(map(plan.activation_name, layers)), "dense"
    sizes = tuple(tuple(v.shape) for v in model.trainable_variables)
    chain = chains.chain_steps(model)
    if chain is not None:
        return sizes, (plan.activation_name(plan.output_layer(model)),), f"chain {tuple(model.inputs[0].shape)} {chain}"
    steps = [(type(s).__name__, [tuple(v.shape) for v in getattr(s, "weights", ())]) for s in model.operations]
    network = f"{config.model.model} {tuple(model.inputs[0].shape)} {steps!r}"
    return sizes, (plan.activation_name(plan.output_layer(model)),), network


def _compiled_pack(pack: _Pack, members: list[replicas.Member], model: keras.Model,
                   dataset: tf.data.Dataset) -> Entry:  # fmt: skip
    """The compiled pack for replicas of this model, these losses and batches: the warm cache's when it keeps one
    of this shape, else built (and kept when warm)."""
    first = members[0]
    training = first.config.training
    sizes, activations, network = _network(model, first.config)
    shape = _PackShape(
        sizes=sizes,
        activations=activations,
        network=network,
        replicas=len(members),
        num_classes=first.data.num_classes,
        steps_per_call=steps_per_call(training.steps, training.eval_every, first.config.output.diagnose_every),
        gradient_every=first.config.output.gradient_every_n_steps,
        log_composition=first.config.output.log_composition,
    )
    heads = replicas.loss_groups(members)
    loss_keys = [(m.loss_key, count) for m, count in heads]
    key = (f"side by side {shape!r} {training.optimizer} {training.learning_rate!r} {loss_keys!r} "
           f"{dataset.element_spec!r}")  # fmt: skip
    entry = pack.warm.get(key) if pack.warm is not None else None
    if entry is None:
        optimizer = models.optimizer(training.optimizer, training.learning_rate)
        template = None if network == "dense" else model
        packed = _PackModel(shape, loss_groups=[(m.loss, count) for m, count in heads], optimizer=optimizer,
                            template=template)  # fmt: skip
        entry = Entry(packed, snapshot_optimizer(packed), [])
        if pack.warm is not None:
            pack.warm.put(key, entry)
    return entry
