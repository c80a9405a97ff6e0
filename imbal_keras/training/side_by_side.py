"""Seeds side by side: runs that differ only in their seeds, trained together in one compiled step.

The runs of a grid cell differ only in their training seeds (initial weights and batch order). For a small
model a train step costs about the number of graph ops it runs, not their size, so R runs whose weights are
stacked along a leading axis, (R, fan_in, units) per Dense layer, train in one step of batched matrix products
for about the cost of one run. Each replica keeps everything of its own: its initial weights (from its own
initialisation seed, as a one-run build gives them), its pipeline (its own order seed), its loss (reduced over
its own batch), its optimizer slots (SGD and Adam are element-wise, so stacked variables update each replica
as its own run would), its per-step instrumentation and its evaluations. The replicas' losses are summed
before differentiating; since no weight is shared, each replica's gradient is its own loss's.

`run_pack(configs)` writes one run folder per config, with the same files, columns and summaries as
`experiment.run`; `seconds` in result.json are the pack's divided by R. Results equal the one-run path's to
float rounding (batched and single matrix products may round differently; tests/side_by_side_test.py states
the tolerance). `pack_reason` says why a pack cannot run this way; the grid then runs its configs one by one
(`imbal_keras.grid.launch`), and says why once.

What it supports: the built-in MLP (Dense layers only, on tabular data without categorical columns), a
strategy that needs no callbacks during training and whose loss is a per-example Keras loss with an additive
reduction, the run's SGD or Adam, and the default instrumentation (batch composition, per-class gradients,
per-batch loss).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from imbal_keras import runs, strategies
from imbal_keras.callbacks import BatchComposition, PerClassGradients
from imbal_keras.callbacks.step_loss import StepLoss
from imbal_keras.config import ExperimentConfig
from imbal_keras.data import splits
from imbal_keras.errors import check
from imbal_keras.grid.sweep import pack_key
from imbal_keras.training import experiment
from imbal_keras.training.warm import Entry, WarmModels, snapshot_optimizer, steps_per_call

_ACTIVATIONS = {"relu": tf.nn.relu, "linear": None}
_REDUCTIONS = ("sum", "sum_over_batch_size", "mean", "mean_with_sample_weight")


def _layers(model: keras.Model) -> list[keras.layers.Dense] | str:
    """The model's Dense layers, or why it is not a stack of Dense layers with relu or linear hidden layers and
    a sigmoid or softmax output."""
    dense = []
    # `operations` also lists the ops applied to Keras tensors between layers (a one-hot encoding, say).
    for layer in getattr(model, "operations", model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not isinstance(layer, keras.layers.Dense) or not layer.use_bias:
            return f"the model has a {type(layer).__name__} step {layer.name!r} (side by side takes Dense layers)"
        dense.append(layer)
    if not dense or len(model.inputs) != 1 or len(model.inputs[0].shape) != 2:
        return "the model is not a stack of Dense layers on (batch, features) inputs"
    *hidden, output = [_activation(layer) for layer in dense]
    for layer, name in zip(dense[:-1], hidden, strict=True):
        if name not in _ACTIVATIONS:
            return f"layer {layer.name!r} has activation {name!r} (side by side takes relu and linear hidden layers)"
    if output not in ("sigmoid", "softmax"):
        return f"the output activation is {output!r}, not sigmoid or softmax"
    return dense


def _activation(layer: keras.layers.Dense) -> str:
    return keras.activations.serialize(layer.activation)


def pack_reason(config: ExperimentConfig, warm: WarmModels | None = None) -> str | None:
    """Why `config`'s pack cannot train side by side before anything is built, or None."""
    strategy = strategies.get(config.strategy.name)
    reason = (warm or WarmModels()).plain_path_reason(config, strategy, ())
    if reason is not None:
        return reason
    if config.model.model == "cnn":
        return "the CNN has convolutions (side by side takes Dense layers)"
    return None


class _PackModel(keras.Model):
    """R stacked copies of a Dense network with a train step that records each replica's instrumentation.

    Buffers hold one row per step of the current call, per replica: the batch composition (batch size, counts,
    weights), the batch loss, and (in due steps) the per-class gradient row of `PerClassGradients`.
    """

    def __init__(self, sizes, activations, *, replicas, num_classes, loss_fn, optimizer, steps_per_call,
                 gradient_every, log_composition):  # fmt: skip
        super().__init__()
        self.replicas, self.num_classes, self.loss_fn = replicas, num_classes, loss_fn
        self.gradient_every, self.log_composition, self.rows = gradient_every, log_composition, steps_per_call
        # Hidden layers' activation functions (None for linear), then the output's name.
        self.activations = [_ACTIVATIONS[name] for name in activations[:-1]]
        self.output_activation = activations[-1]
        self.stacked = []
        for i, (fan_in, units) in enumerate(sizes):
            kernel = self.add_weight(shape=(replicas, fan_in, units), initializer="zeros", name=f"kernel_{i}")
            bias = self.add_weight(shape=(replicas, 1, units), initializer="zeros", name=f"bias_{i}")
            self.stacked += [kernel, bias]
        k = num_classes

        def buffer(name, width):
            return self.add_weight(shape=(steps_per_call, replicas, width), initializer="zeros", trainable=False,
                                   name=name)  # fmt: skip

        self.composition = buffer("composition_rows", 1 + 2 * k)
        self.losses_rows = buffer("loss_rows", 1)
        self.gradient_rows = buffer("gradient_rows", 5 + 5 * k)
        self.built = True
        self.compile(optimizer=optimizer, steps_per_execution=steps_per_call)
        self.optimizer.build(self.trainable_variables)

    def set_replicas(self, weights: list[list[np.ndarray]]) -> None:
        """Loads each replica's initial weights (a one-run model's `get_weights()` each)."""
        for i, variable in enumerate(self.stacked):
            variable.assign(np.stack([w[i].reshape(variable.shape[1:]) for w in weights]).astype(np.float32))

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """(R, B, units) logits of inputs (R, B, D), or of (B, D) shared by every replica."""
        h = x
        for i, activation in enumerate([*self.activations, None]):
            kernel, bias = self.stacked[2 * i], self.stacked[2 * i + 1]
            # (B, D) @ (R, D, U) broadcasts to (R, B, U); (R, B, D) @ (R, D, U) is a batched product.
            h = tf.matmul(h, kernel) + bias
            if activation is not None:
                h = activation(h)
        return h

    def probabilities(self, logits: tf.Tensor) -> tf.Tensor:
        activation = tf.nn.sigmoid if self.output_activation == "sigmoid" else tf.nn.softmax
        return activation(logits)

    def _replica_losses(self, logits, y, sample_weight):
        """Per-replica losses (R,) and the weighted per-example values (R, B), as `Loss.__call__` reduces them
        per replica batch."""
        r, b = self.replicas, tf.shape(y)[1]
        flat_logits = tf.reshape(logits, [-1, logits.shape[-1]])
        probabilities = self.probabilities(flat_logits)
        probabilities._keras_logits = flat_logits  # Keras's cross-entropies read these, as behind a Dense output
        fn = self.loss_fn
        values = fn.call(tf.cast(tf.reshape(y, [-1]), fn.dtype), tf.cast(probabilities, fn.dtype))
        if values.shape.rank > 1:
            values = tf.reduce_sum(values, axis=list(range(1, values.shape.rank)))
        values = tf.reshape(values, [r, b])
        if sample_weight is not None:
            values = values * tf.cast(sample_weight, values.dtype)
        sums = tf.reduce_sum(values, axis=1)
        if fn.reduction == "sum":
            return sums, values, tf.ones_like(sums)
        if fn.reduction == "mean_with_sample_weight" and sample_weight is not None:
            divisor = tf.reduce_sum(tf.cast(sample_weight, values.dtype), axis=1)
        else:
            divisor = tf.fill([r], tf.cast(b, values.dtype))
        return tf.math.divide_no_nan(sums, divisor), values, divisor

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
        counts = tf.reduce_sum(one_hot, axis=1)
        if self.log_composition:
            size = tf.fill([self.replicas, 1], tf.cast(tf.shape(y)[1], tf.float32))
            weights = (
                counts
                if sample_weight is None
                else tf.einsum("rbk,rb->rk", one_hot, tf.cast(sample_weight, tf.float32))
            )
            self._write(self.composition, index, tf.concat([size, counts, weights], axis=1))
        if record:
            self._write(self.gradient_rows, index,
                        self._gradient_row(tape, logits, total, gradients, before, values, divisor, one_hot,
                                           counts, losses))  # fmt: skip
        return {"loss": tf.reduce_mean(losses)}

    @staticmethod
    def _write(buffer, index, row):
        buffer.assign(tf.tensor_scatter_nd_update(buffer.value, index, tf.cast(row, tf.float32)[None]))

    def _gradient_row(self, tape, logits, total, gradients, before, values, divisor, one_hot, counts, losses):
        """`PerClassGradients`'s raw row per replica, (R, 5 + 5K)."""
        variables = self.trainable_variables
        r, k = self.replicas, self.num_classes

        def flatten(tensors):
            return tf.concat([tf.reshape(tf.cast(t, tf.float32), [r, -1]) for t in tensors], axis=1)

        # Each class's gradient: the loss's output gradient masked to the class's rows, back-propagated (a class
        # without examples in a replica's batch gets exactly 0 there).
        output_gradient = tape.gradient(total, logits)
        per_class = tf.stack(
            [flatten(tape.gradient(logits, variables, output_gradients=output_gradient * one_hot[:, :, c : c + 1]))
             for c in range(k)],
            axis=1,
        )  # fmt: skip
        total_gradient = flatten(gradients)
        # As `PerClassGradients` does: the class with the most examples (the first of equals) is the total minus
        # the others, so the classes' gradients sum to the total where it is near zero too.
        largest = tf.one_hot(tf.argmax(counts, axis=1), k, dtype=tf.float32)[:, :, None]
        others = tf.reduce_sum(per_class * (1.0 - largest), axis=1, keepdims=True)
        per_class = per_class * (1.0 - largest) + largest * (total_gradient[:, None] - others)
        update = flatten([v.value for v in variables]) - flatten(before)
        rest = tf.reduce_sum(per_class, axis=1, keepdims=True) - per_class
        shares = update[:, None] * tf.math.divide_no_nan(per_class, total_gradient[:, None])
        class_norms, rest_norms, share_norms = (tf.norm(t, axis=2) for t in (per_class, rest, shares))
        cosines = tf.math.divide_no_nan(tf.reduce_sum(per_class * rest, axis=2), class_norms * rest_norms)
        total_norm = tf.norm(total_gradient, axis=1, keepdims=True)
        class_losses = tf.einsum("rb,rbk->rk", values, one_hot) / divisor[:, None]
        return tf.concat(
            [losses[:, None], tf.zeros([r, 1]), class_losses, total_norm, total_norm, class_norms, cosines,
             tf.norm(update, axis=1, keepdims=True), share_norms, counts],
            axis=1,
        )  # fmt: skip


class _Replica:
    """One run of a pack: its config, staging folder, setup, recorders and evaluator."""

    def __init__(self, config, data, target, staging, setup, started, log):
        self.config, self.staging, self.setup = config, staging, setup
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
        self.evaluator = experiment._Evaluator(
            data, config.training, staging, log, started, prior=counts / counts.sum(), functions={}
        )
        self.epoch_losses: list[float] = []


class _PackCallback(keras.callbacks.Callback):
    """Reads the pack's buffers after every call into each replica's recorders, and evaluates every replica at
    the end of every epoch."""

    def __init__(self, pack: _PackModel, replicas: list[_Replica], data: splits.Data, forward: Callable):
        super().__init__()
        self.pack, self.replicas, self.data, self.forward = pack, replicas, data, forward
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
        validation, test = self.forward(self.data.validation.x), self.forward(self.data.test.x)
        for r, replica in enumerate(self.replicas):
            # Keras's logged loss at an epoch's end: the mean of the epoch's batch losses.
            train_loss = float(np.mean(replica.epoch_losses)) if replica.epoch_losses else float("nan")
            replica.evaluator.evaluate(epoch, validation[r], test[r], train_loss)
            for recorder in (replica.loss, *replica.instrumentation):
                recorder.end_epoch(epoch)


def _forward(pack: _PackModel, functions: dict, input_shape) -> Callable[[np.ndarray], np.ndarray]:
    """Every replica's probabilities (R, N, units) for shared inputs (N, D), through one traced function."""
    function = functions.get("forward")
    if function is None:
        signature = [tf.TensorSpec((None, *input_shape), tf.float32)]
        function = tf.function(lambda x: pack.probabilities(pack.logits(x)), input_signature=signature)
        functions["forward"] = function
    rows = max(4096, experiment._PREDICT_VALUES // max(1, int(np.prod(input_shape)) * pack.replicas))

    def forward(x):
        return np.concatenate([function(x[i : i + rows]).numpy() for i in range(0, len(x), rows)], axis=1)

    return forward


def _loss_key(loss_fn, config, data, counts) -> str:
    """What a compiled pack's traced loss depends on: a Keras loss's class and config; for any other loss
    (which may hold constants of its own, e.g. per-class margins) everything the run's config and data decide."""
    if type(loss_fn).__module__.startswith("keras."):
        return f"{type(loss_fn).__qualname__} {sorted(loss_fn.get_config().items())!r}"
    return WarmModels.key(config, data.train.x.shape[1:], counts)


def _initial_weights(configs, setups, data, first_model, log) -> list[list[np.ndarray]]:
    """Every replica's initial weights: drawn from the built-in MLP's initialisers (`models.mlp_weights`) when
    they give the first replica's built model exactly, else from a model built per replica."""
    first_weights = first_model.get_weights()

    def drawn(config, setup):
        return experiment.models.mlp_weights(
            data.train.x.shape[1], data.num_classes, hidden_units=config.model.hidden_units,
            training_distribution=setup.training_distribution, output_bias=setup.output_bias,
            zero_output_kernel=config.model.zero_output_kernel, seed=setup.init_seed,
        )  # fmt: skip

    same = configs[0].model.model in ("auto", "mlp") and _equal(drawn(configs[0], setups[0]), first_weights)
    weights = [first_weights]
    for config, setup in zip(configs[1:], setups[1:], strict=True):
        weights.append(drawn(config, setup) if same else setup.build_model(config, data, log).get_weights())
    return weights


def _equal(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _stacked_dataset(setups, data: splits.Data, data_options) -> tf.data.Dataset:
    """The replicas' pipelines, each element stacked along a leading replica axis.

    The strategy's pipeline is built once, inside a dataset function that takes the order seed as a tensor, and
    interleaved over the replicas' seeds one batch at a time: tracing a pipeline's functions costs more than a
    short run's training, and this traces them once per pack. Every random op of a pipeline is stateless and
    seeded from that seed, so each replica's stream is the batches its one-run pipeline yields.
    """
    first = setups[0]
    seeds = tf.data.Dataset.from_tensor_slices(np.array([s.ctx.seed for s in setups], np.int64))

    def pipeline(seed):
        ctx = dataclasses.replace(first.ctx, seed=seed)
        return strategies.build_pipeline(first.strategy, data.train.x, data.train.y, ctx)

    stacked = seeds.interleave(pipeline, cycle_length=len(setups), block_length=1)
    stacked = stacked.batch(len(setups), drop_remainder=True).prefetch(2)
    return stacked if data_options is None else stacked.with_options(data_options)


def run_pack(
    configs: Sequence[ExperimentConfig],
    *,
    warm: WarmModels | None = None,
    log: Callable[[str], None] | None = None,
    data_options: tf.data.Options | None = None,
) -> list[experiment.RunResult] | str:
    """Trains `configs` (equal `pack_key`) side by side and writes their run folders.

    Returns:
      One `RunResult` per config, in order; or, when the pack cannot train side by side, the reason (nothing is
      written then and the caller runs the configs one by one).

    Raises:
      UserInputError: a bad config, dataset or output folder (nothing is written).
    """
    log = log or (lambda _: None)
    configs = list(configs)
    check(
        len({pack_key(c) for c in configs}) == 1,
        "configs of one pack may differ only in their training seeds (seed, init_seed, order_seed; one data seed)",
        argument="configs",
    )
    first = configs[0]
    for config in configs:
        config.validate()
    reason = pack_reason(first, warm)
    if reason is not None:
        return reason
    started = time.time()
    data, target = experiment.load_data(first, warm)
    stagings = []
    try:
        for config in configs:
            stagings.append(runs.stage(config.output.output_dir, config.output.run_name or config.default_run_name()))
        results = _train(configs, data, target, stagings, started, log, data_options, warm)
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


def _train(configs, data, target, stagings, started, log, data_options, warm):
    first, training = configs[0], configs[0].training
    r = len(configs)
    setups = [experiment._setup(c, data, target, data_options, pipeline=False) for c in configs]
    first_model = setups[0].build_model(first, data, log)
    layers = _layers(first_model)
    if isinstance(layers, str):
        return layers
    weights = _initial_weights(configs, setups, data, first_model, log)
    loss_fn = strategies.build_loss(setups[0].strategy, setups[0].ctx)
    if getattr(loss_fn, "reduction", None) not in _REDUCTIONS or not hasattr(loss_fn, "call"):
        return f"the loss {type(loss_fn).__name__} has no additive reduction"
    dataset = _stacked_dataset(setups, data, data_options)
    calls = steps_per_call(training.steps, training.eval_every)
    sizes = [tuple(layer.kernel.shape) for layer in layers]
    activations = [_activation(layer) for layer in layers]
    shape = {
        "layers": sizes, "activations": activations, "classes": data.num_classes, "replicas": r,
        "steps_per_call": calls, "gradient_every": first.output.gradient_every_n_steps,
        "log_composition": first.output.log_composition, "optimizer": training.optimizer,
        "learning_rate": training.learning_rate, "loss": _loss_key(loss_fn, first, data, setups[0].ctx.class_counts),
        "batches": repr(dataset.element_spec),
    }  # fmt: skip
    key = f"side by side {sorted(shape.items())!r}"
    entry = warm.get(key) if warm is not None else None
    if entry is None:
        pack = _PackModel(
            sizes, activations,
            replicas=r, num_classes=data.num_classes, loss_fn=loss_fn,
            optimizer=experiment.models.optimizer(training.optimizer, training.learning_rate),
            steps_per_call=calls, gradient_every=first.output.gradient_every_n_steps,
            log_composition=first.output.log_composition,
        )  # fmt: skip
        entry = Entry(pack, snapshot_optimizer(pack), [])
        if warm is not None:
            warm.put(key, entry)
    pack = entry.model
    pack.set_replicas(weights)
    entry.reset_optimizer()
    replicas = []
    for config, setup, staging in zip(configs, setups, stagings, strict=True):
        runs.write_text(os.path.join(staging, runs.CONFIG_FILE), config.to_json())
        experiment.log_start(config, data, setup, log)
        replicas.append(_Replica(config, data, target, staging, setup, started, log))
    callback = _PackCallback(pack, replicas, data, _forward(pack, entry.functions, data.train.x.shape[1:]))
    fit_started = time.time()
    try:
        pack.fit(
            dataset,
            steps_per_epoch=training.eval_every,
            epochs=math.ceil(training.steps / training.eval_every),
            verbose=0,
            shuffle=False,
            callbacks=[experiment._StepBudget(training.steps, training.eval_every), callback],
        )
    finally:
        for replica in replicas:
            replica.evaluator.close()
            for recorder in (replica.loss, *replica.instrumentation):
                recorder.close()
    results = []
    for replica in replicas:
        results.append(
            experiment.finish(
                replica.config,
                data,
                target,
                replica.setup,
                replica.staging,
                replica.evaluator,
                replica.instrumentation,
                [],
                started,
                fit_started,
                share=1 / r,
            )  # fmt: skip
        )
    return results
