"""Reading class ids out of the labels a compiled model trains on, for each model output observed.

A `Target` is one observed output and how its labels hold the classes:
- "classes": one label per example, class ids (B,) or (B, 1), boolean, or one-hot (B, K);
- "dense": a label per pixel or token, sparse ids (B, ...) or (B, ..., 1), or one-hot (B, ..., K), for an output
  (B, ..., K) of rank 3 or more, with an optional `ignore_class` whose elements count in no class;
- "multi_label": L binary labels per example, (B, L) of 0/1, for a (B, L) output trained with a binary
  cross-entropy: the "classes" are the labels.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from imbal_keras.callbacks import _keras_adapter
from imbal_keras.errors import UserInputError
from imbal_keras.losses import LabelwiseBinaryCrossentropy as LabelwiseBCE

CLASSES, DENSE, MULTI_LABEL = "classes", "dense", "multi_label"
# The losses under which a (B, L) output with L > 1 is L binary labels rather than one of L classes.
_BINARY_LOSSES = ("binary_crossentropy", "bce", "binary_focal_crossentropy")


@dataclasses.dataclass(frozen=True)
class Target:
    """One observed model output.

    Attributes:
      name: the output's name for a model with several outputs (it prefixes the tags), None for one output.
      index: the output's position in `model.output_names`.
      num_classes: K (L labels for "multi_label").
      kind: "classes", "dense" or "multi_label".
      labels: how tags name the classes, in class order (`class_{label}`).
      ignore_class: the label of elements that count in no class ("dense" only), or None.
      output_rank: the rank of the output, (B, K) being 2.
    """

    name: str | None
    index: int
    num_classes: int
    kind: str
    labels: tuple[str, ...]
    ignore_class: int | None = None
    output_rank: int = 2

    @property
    def prefix(self) -> str:
        """What the tags of this output start with: `{name}/` for a model with several outputs, else nothing."""
        return f"{self.name}/" if self.name else ""


@dataclasses.dataclass(frozen=True)
class Request:
    """What a recorder was asked to observe (its constructor's arguments)."""

    callback_name: str
    num_classes: int | None = None
    class_names: list[str] | None = None
    outputs: list[str] | None = None
    ignore_class: int | None = None


def targets(model: keras.Model, request: Request) -> list[Target]:
    """The outputs a recorder observes: every output of the model, or those `request.outputs` names.

    Raises:
      UserInputError: an unknown output name, classes that cannot be inferred, or `num_classes`/`class_names`
        for several outputs at once.
    """
    name = request.callback_name
    specs = _output_specs(model)
    names = [n for n, _ in specs]
    chosen = request.outputs if request.outputs is not None else names
    if len(specs) == 1 and request.outputs is None:
        chosen = names
    unknown = [o for o in chosen if o not in names]
    if unknown or not chosen:
        raise UserInputError(f"{name}: outputs must name outputs of the model {names}. Received: outputs={chosen!r}")
    if len(chosen) > 1 and (request.num_classes is not None or request.class_names is not None):
        raise UserInputError(
            f"{name}: num_classes= and class_names= apply to one output; pass outputs=[one name] with them. "
            f"Received: outputs={chosen!r}"
        )
    multi = len(specs) > 1
    return [_target(model, request, names.index(o), specs[names.index(o)], multi) for o in chosen]


def _target(model: keras.Model, request: Request, index: int, named_spec, multi: bool) -> Target:
    output_name, spec = named_spec
    loss = _user_loss(model, output_name, index)
    shape = None if spec is None else spec.shape
    width = shape[-1] if shape is not None and len(shape) >= 2 else None
    if shape is not None and len(shape) >= 3:
        kind = DENSE
    elif width is not None and width > 1 and _is_binary(loss):
        kind = MULTI_LABEL
    else:
        kind = CLASSES
    k = request.num_classes
    if k is None:
        if width is None or (shape is not None and len(shape) < 2):
            where = f" of output {output_name!r}" if multi else ""
            raise UserInputError(
                f"{request.callback_name} cannot infer the number of classes from the model output{where}; pass "
                f"num_classes=. Received: output shape={shape}"
            )
        k = 2 if width == 1 else int(width)
    elif request.class_names is not None and width is not None and (2 if width == 1 else width) != k:
        raise UserInputError(
            f"{request.callback_name}: class_names must name each of the model's {2 if width == 1 else width} "
            f"classes. Received: class_names={request.class_names!r}"
        )
    labels = tuple(request.class_names) if request.class_names is not None else tuple(str(c) for c in range(k))
    ignore = request.ignore_class if request.ignore_class is not None else _loss_ignore_class(loss)
    rank = len(shape) if kind == DENSE else 2
    return Target(output_name if multi else None, index, k, kind, labels, ignore if kind == DENSE else None, rank)


def _output_specs(model: keras.Model) -> list[tuple[str | None, object]]:
    """`(name, spec)` of each model output, in `model.output_names` order (the name is None for one output)."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if outputs:
        names = list(getattr(model, "output_names", None) or [])
        if len(outputs) == 1:
            return [(names[0] if names else None, outputs[0])]
        names = names if len(names) == len(outputs) else [f"output_{i}" for i in range(len(outputs))]
        return list(zip(names, outputs, strict=True))
    shape = _keras_adapter.built_input_shape(model)
    spec = None if shape is None else model.compute_output_spec(keras.KerasTensor(shape))
    if isinstance(spec, dict):
        return sorted(spec.items())
    if isinstance(spec, (list, tuple)):
        return [(f"output_{i}", s) for i, s in enumerate(spec)] if len(spec) > 1 else [(None, spec[0])]
    return [(None, spec)]


def _user_loss(model: keras.Model, output_name, index: int):
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        return loss.get(output_name)
    if isinstance(loss, (list, tuple)):
        return loss[index] if index < len(loss) else None
    return loss


def _is_binary(loss) -> bool:
    if isinstance(loss, str):
        return loss in _BINARY_LOSSES
    if isinstance(loss, (keras.losses.BinaryCrossentropy, keras.losses.BinaryFocalCrossentropy, LabelwiseBCE)):
        return True
    return getattr(loss, "__name__", None) in _BINARY_LOSSES


def _loss_ignore_class(loss) -> int | None:
    if isinstance(loss, keras.losses.Loss):
        return loss.get_config().get("ignore_class")
    return None


def select(structure, target: Target, shared: bool = False):
    """The part of `structure` (labels, sample weights or model outputs) that belongs to `target`'s output.

    A dict is read by output name, a list or tuple by position; a single tensor is the output's own when the
    model has one output, and with `shared` (sample weights) it applies to every output.
    """
    if target.name is None and not isinstance(structure, (dict, list, tuple)):
        return structure
    if isinstance(structure, dict):
        return structure.get(target.name)
    if isinstance(structure, (list, tuple)):
        if len(structure) == 1 and target.name is None:
            return structure[0]
        return structure[target.index] if target.index < len(structure) else None
    return structure if shared or structure is None else None


def check_labels(y, target: Target, callback_name: str) -> None:
    """Raises unless labels like `y` (a tensor or a `tf.TensorSpec`: only its dtype and shape are read) can be read
    for `target`, so that labels that cannot are refused before a step is traced.

    Raises:
      UserInputError: labels of another structure, rank, width or dtype, or none for the output.
    """
    _layout(y, target, callback_name)


def class_ids(y: tf.Tensor, target: Target, callback_name: str) -> tf.Tensor:
    """The class id of every element: (B,) int32 for "classes", (B, N) for "dense" (N pixels or tokens).

    For K = 2 a float label counts as class 1 when it is >= 0.5, so smoothed binary labels work. In "dense" labels
    an element equal to `ignore_class` gets id -1, which no class counts.

    Raises:
      UserInputError: (at trace time) labels that cannot be read.
    """
    layout = _layout(y, target, callback_name)
    if layout == "one_hot":
        ids = tf.argmax(y, axis=-1, output_type=tf.int32)
    else:
        if layout == "column":
            y = tf.squeeze(y, axis=-1)
        ids = tf.cast(y >= 0.5, tf.int32) if y.dtype.is_floating and target.num_classes == 2 else tf.cast(y, tf.int32)
        if target.ignore_class is not None:
            ids = tf.where(tf.equal(tf.cast(y, tf.int64), target.ignore_class), -1, ids)
    return tf.reshape(ids, [tf.shape(ids)[0], -1]) if target.kind == DENSE else ids


def positives(y: tf.Tensor, target: Target, callback_name: str) -> tf.Tensor:
    """(B, L) float32: 1 where an example holds label l ("multi_label" targets; labels >= 0.5 count)."""
    _layout(y, target, callback_name)
    return tf.cast(tf.cast(y, tf.float32) >= 0.5, tf.float32)


def _layout(y, target: Target, callback_name: str) -> str:
    """How labels like `y` hold the classes: "ids", "column" (a trailing axis of 1) or "one_hot"."""
    k = target.num_classes
    numeric = hasattr(y, "dtype") and (y.dtype.is_integer or y.dtype.is_floating or y.dtype == tf.bool)
    where = f" of output {target.name!r}" if target.name else ""
    if isinstance(y, (list, tuple, dict)) or not numeric:
        raise UserInputError(
            f"{callback_name} cannot interpret the labels{where}: expected numeric labels {_expected(target)}. "
            f"Received: y={y!r}"
        )
    rank, width = y.shape.rank, y.shape[-1] if y.shape.rank else None
    if target.kind == MULTI_LABEL:
        if rank == 2 and width == k:
            return "ids"
    elif rank == target.output_rank and width == 1:
        return "column"
    elif rank == target.output_rank and width == k and y.dtype != tf.bool:
        return "one_hot"
    elif rank == target.output_rank - 1:
        return "ids"
    raise UserInputError(
        f"{callback_name} cannot interpret labels{where} for a model with {k} classes: expected "
        f"{_expected(target)}. Received: y.shape={y.shape}"
    )


def _expected(target: Target) -> str:
    k = target.num_classes
    if target.kind == DENSE:
        return f"class ids per element (B, ...) or (B, ..., 1), or one-hot (B, ..., {k})"
    if target.kind == MULTI_LABEL:
        return f"0/1 labels (B, {k})"
    return f"class ids (B,) or (B, 1), or one-hot (B, {k})"
