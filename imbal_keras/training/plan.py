"""How a run trains, and why: the one place that chooses between the plain, warm and packed paths.

A run takes one of three paths (`imbal_keras.training.experiment` runs the first two, `side_by_side` the third):

- `plain`: everything is built and traced for this run alone;
- `warm`: a compiled model of an earlier run of the same shape is reused (`imbal_keras.training.warm`), with the
  same results;
- `packed`: runs of equal shapes (they may differ in their seeds, data seeds and strategies) train as replicas
  of one network with stacked weights in one compiled step (`imbal_keras.training.side_by_side`).

`plan_run` and `plan_pack` return a `Plan`: the path taken and, when it is not the preferred one, the reason in
words (which the run record keeps, `Plan.record`, and the grid's progress prints). Every rule that keeps a run off
the warm or packed path is here, and nowhere else.

This module imports TensorFlow only when it inspects a built model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from imbal_keras import strategies
from imbal_keras.config import BUILT_IN_MODELS, ExperimentConfig

__all__ = [
    "HIDDEN_ACTIVATIONS",
    "MODES",
    "OUTPUT_ACTIVATIONS",
    "WARM_OFF",
    "Plan",
    "activation_name",
    "dense_layers",
    "output_layer",
    "plan_pack",
    "plan_run",
    "stacked_dense",
]

MODES = ("plain", "warm", "packed")
# The activations a packed network re-states: its hidden layers' and its output's.
HIDDEN_ACTIVATIONS = ("relu", "linear")
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax")
# What a plain run that could have run warm says when the caller keeps no compiled models.
WARM_OFF = "warm runs off"


@dataclasses.dataclass(frozen=True)
class Plan:
    """The path a run takes.

    Attributes:
      mode: `plain`, `warm` or `packed` (see the module docstring).
      reason: why the preferred path (`warm` for one run, `packed` for a pack) was not taken; empty when it was.
      replicas: runs trained together (R for `packed`, 1 otherwise).
    """

    mode: str
    reason: str = ""
    replicas: int = 1

    def record(self) -> dict[str, Any]:
        """The run record's `training_path`: mode and reason, and the replicas of a packed run."""
        record: dict[str, Any] = {"mode": self.mode, "reason": self.reason}
        if self.mode == "packed":
            record["replicas"] = self.replicas
        return record


def plan_run(config: ExperimentConfig, *, extra_callbacks: Sequence[Any] = (), warm_enabled: bool = True) -> Plan:
    """How one run trains: `warm` when it can reuse a compiled model, else `plain` with the reason.

    Args:
      config: the run.
      extra_callbacks: the Keras callbacks the caller adds to the run's `fit`.
      warm_enabled: whether the caller keeps compiled models between runs (a `WarmModels` cache).

    Returns:
      A `Plan` with mode `warm` or `plain`.
    """
    # The caller's choice comes first: with warm runs off, that is why a run is plain, whatever else holds.
    reason = WARM_OFF if not warm_enabled else _run_reason(config, extra_callbacks)
    return Plan("plain", reason) if reason is not None else Plan("warm")


def plan_pack(
    config: ExperimentConfig, replicas: int, *, model: Any = None, loss: Any = None, data: Sequence[Any] = ()
) -> Plan:
    """How the runs of a pack (configs of equal `key("pack")`: they may differ in their seeds, data seeds and
    strategies) train: `packed`, or `plain` with the reason (each run then takes its own path, `plan_run`).

    Called per config before anything is built (no `model`, no `loss`: the config's rules only) and again with
    the first replica's built model, each replica's loss and every replica's data.

    Args:
      config: a config of the pack.
      replicas: the runs in the pack.
      model: the first replica's built Keras model, or None.
      loss: the config's strategy's loss (`strategies.build_loss`), or None.
      data: every replica's `splits.Data` (their shapes must agree), or none.

    Returns:
      A `Plan` with mode `packed` (and `replicas`) or `plain`.
    """
    reason = _config_reason(config, packed=True)
    if reason is None and model is not None:
        reason = _model_reason(model)
    if reason is None and loss is not None:
        reason = _loss_reason(loss)
    if reason is None and data:
        reason = _data_reason(data)
    return Plan("plain", reason) if reason is not None else Plan("packed", replicas=replicas)


def _data_reason(data: Sequence[Any]) -> str | None:
    """Why replicas with these data cannot share a compiled step (their inputs, classes or evaluation splits
    differ in shape), or None."""
    first = data[0]
    if first.kind not in strategies.SINGLE_LABEL_KINDS:  # one label per example
        return f"the data are {first.kind}, not single-label classification (they take the one-run path)"
    for other in data[1:]:
        if other is first:
            continue
        if other.train.x.shape[1:] != first.train.x.shape[1:] or other.num_classes != first.num_classes:
            return "the replicas' data differ in input shape or classes"
        if len(other.validation) != len(first.validation) or len(other.test) != len(first.test):
            return "the replicas' validation or test splits differ in size"
    return None


def _config_reason(config: ExperimentConfig, *, packed: bool = False) -> str | None:
    """Why a run's config keeps it from sharing a compiled step with other runs (`packed`: side by side), or
    None. A pack binds step-reading losses to its own step counter (`Strategy.callbacks_bind_step`)."""
    strategy = strategies.get(config.strategy.name)
    if strategy.callbacks is not None and not (packed and strategy.callbacks_bind_step):
        return f"strategy {strategy.name!r} changes its loss or batches during training"
    if config.output.diagnose_every and not packed:
        return "diagnose_every traces the gradient-noise diagnostics per run"
    return None


def _run_reason(config: ExperimentConfig, extra_callbacks: Sequence[Any]) -> str | None:
    """Why a run cannot reuse a compiled model, or None. (A pack builds every replica's model anew, so a model
    function's model packs; it does not run warm.)"""
    reason = _config_reason(config)
    if reason is None and config.model.model not in BUILT_IN_MODELS:
        reason = "a model function's model may keep state of its own between runs"
    if reason is not None or not extra_callbacks:
        return reason
    from imbal_keras.callbacks.recorder import StepRecorder

    if any(isinstance(c, StepRecorder) for c in extra_callbacks):
        return "extra imbal_keras recorders are attached"
    if any(_reads_batches(c) for c in extra_callbacks):
        return "extra callbacks read every batch (warm runs call several steps at once)"
    return None


def _reads_batches(callback: Any) -> bool:
    """Whether a Keras callback overrides a per-batch training hook."""
    import keras

    hooks = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")
    return any(getattr(type(callback), h, None) is not getattr(keras.callbacks.Callback, h) for h in hooks)


def dense_layers(model: Any) -> list[Any]:
    """The model's steps after its input, in order (`operations` also lists the ops applied to Keras tensors
    between layers, a one-hot encoding say). For a model `plan_pack` accepts, these are its Dense layers."""
    import keras

    return [s for s in getattr(model, "operations", model.layers) if not isinstance(s, keras.layers.InputLayer)]


def activation_name(layer: Any) -> str:
    """The serialized name of a Dense layer's activation (`relu`, `linear`, `sigmoid`, ...)."""
    import keras

    return keras.activations.serialize(layer.activation)


def stacked_dense(model: Any) -> bool:
    """Whether `model` is a stack of Dense layers (with biases) with relu or linear hidden layers on (batch,
    features) inputs: its replicas then train as stacked matrix products (`side_by_side`); any other model that
    packs trains through a vectorized map of its own call."""
    import keras

    steps = dense_layers(model)
    if not steps or len(model.inputs) != 1 or len(model.inputs[0].shape) != 2:
        return False
    if not all(isinstance(step, keras.layers.Dense) and step.use_bias for step in steps):
        return False
    return all(activation_name(layer) in HIDDEN_ACTIVATIONS for layer in steps[:-1])


def output_layer(model: Any) -> Any:
    """The layer that computes the model's (single) output."""
    return model.outputs[0]._keras_history.operation


def _model_reason(model: Any) -> str | None:
    """Why replicas of `model` cannot train in one compiled step (each with its own weights, through a map of
    the model's own call over the replicas), or None."""
    if getattr(model, "compiled", False):
        return "the model function compiled its model (its own optimizer and loss)"
    if len(getattr(model, "inputs", None) or ()) != 1 or len(getattr(model, "outputs", None) or ()) != 1:
        return "the model is not a functional or sequential model with one input and one output"
    if model.non_trainable_variables:
        names = [layer.name for layer in model.layers if layer.non_trainable_variables]
        return f"the model keeps state that is not trained (in {', '.join(names)}: moving statistics, dropout seeds)"
    if model.losses:
        return "the model adds losses of its own (regularizers)"
    output = output_layer(model)
    name = activation_name(output) if hasattr(output, "activation") else type(output).__name__
    if name not in OUTPUT_ACTIVATIONS:
        return f"the output activation is {name!r}, not sigmoid or softmax"
    return None


def _loss_reason(loss: Any) -> str | None:
    """Why a packed step cannot reduce `loss` per replica (it needs a per-example Keras loss whose reduction sums
    over the batch), or None."""
    from imbal_keras.callbacks.rows import ADDITIVE_REDUCTIONS

    if getattr(loss, "reduction", None) not in ADDITIVE_REDUCTIONS or not hasattr(loss, "call"):
        return f"the loss {type(loss).__name__} has no additive reduction"
    return None
