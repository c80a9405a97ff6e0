"""The recorded quantities: one definition of each row, for every path that records it.

The probe's recorders (`BatchComposition`, `PerClassGradients`) and the replicas of seeds side by side
(`imbal_keras.training.side_by_side`) compute their rows with these functions, so a quantity means the same, with
the same arithmetic, whichever path trained the run. Tensors may carry leading axes (`...`, the replicas of a
pack: R); the functions reduce over the batch and class axes only. The row widths are the lengths of the tag
lists below.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "ACCUMULATION_TAGS",
    "EMA_OVERWRITE_TAG",
    "ADDITIVE_REDUCTIONS",
    "class_labels",
    "class_losses",
    "class_masks",
    "class_order",
    "composition_raw_tags",
    "composition_row",
    "composition_tags",
    "dense_composition_row",
    "gradient_row",
    "gradient_tags",
    "joined_gradient_rows",
    "multi_label_composition_row",
    "output_composition_tags",
    "output_gradient_tags",
    "per_class_gradients",
    "reduce_loss",
    "reduce_loss_by_code",
    "REDUCTION_CODES",
]

# The reductions of a Keras `Loss` that sum per-example values over the batch (then divide by one divisor): the
# losses whose classes' parts add up to the batch loss.
ADDITIVE_REDUCTIONS = ("sum", "sum_over_batch_size", "mean", "mean_with_sample_weight")


def class_labels(num_classes: int, class_names: list[str] | None = None) -> list[str]:
    """How tags name the classes (`class_{label}`): the names given, else the ids 0..K-1."""
    return list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]


def composition_raw_tags(num_classes: int, *, class_names: list[str] | None = None) -> list[str]:
    """The quantities of a recorded composition row, in order: the batch size, then per class the count and the
    total sample weight. Only additive quantities: summing replicas' rows gives the global batch's."""
    classes = class_labels(num_classes, class_names)
    return (
        ["composition/batch_size"]
        + [f"composition/count/class_{c}" for c in classes]
        + [f"composition/weight/class_{c}" for c in classes]
    )


def composition_tags(num_classes: int, *, class_names: list[str] | None = None) -> list[str]:
    """The logged composition columns (TensorBoard tags): the recorded ones, each class's share of the batch and
    whether the batch lacked the minority class."""
    classes = class_labels(num_classes, class_names)
    return (
        ["composition/batch_size"]
        + [f"composition/count/class_{c}" for c in classes]
        + [f"composition/share/class_{c}" for c in classes]
        + [f"composition/weight/class_{c}" for c in classes]
        + ["composition/no_minority"]
    )


def composition_row(one_hot: tf.Tensor, sample_weight: tf.Tensor | None) -> list[tf.Tensor]:
    """A batch's composition row in the order of `composition_raw_tags`, as parts along the last axis.

    Args:
      one_hot: (..., B, K) float32 class membership (a row of zeros for a label outside 0..K-1, which then counts
        in the batch size only).
      sample_weight: (..., B) weights, or None (every example weighs 1: the weights are the counts).

    Returns:
      `[batch size (..., 1), counts (..., K), weights (..., K)]`, float32.
    """
    counts = tf.reduce_sum(one_hot, axis=-2)
    shape = tf.shape(one_hot)
    batch_size = tf.cast(shape[-2:-1], tf.float32)
    if one_hot.shape.rank > 2:
        batch_size = tf.broadcast_to(batch_size, tf.concat([shape[:-2], [1]], axis=0))
    if sample_weight is None:
        return [batch_size, counts, counts]
    weights = tf.linalg.matvec(one_hot, tf.cast(sample_weight, tf.float32), transpose_a=True)
    return [batch_size, counts, weights]


def output_composition_tags(target, *, raw: bool = False) -> list[str]:
    """The composition columns of one observed output (`_labels.Target`), prefixed with its name when the model has
    several outputs; with `raw`, only the recorded (additive) ones.

    "classes" targets have the columns of `composition_tags`. "dense" targets count elements (pixels or tokens):
    `composition/elements` (labelled elements, the ignored ones left out), `composition/count/class_{c}` (elements
    of class c), their share of the labelled elements and `composition/examples/class_{c}` (examples holding an
    element of c). "multi_label" targets count examples positive for each label, and `composition/no_label` the
    examples without any positive label.
    """
    classes = list(target.labels)
    if target.kind not in ("dense", "multi_label"):
        tags = composition_raw_tags if raw else composition_tags
        return [target.prefix + tag for tag in tags(len(classes), class_names=classes)]
    count = [f"composition/count/class_{c}" for c in classes]
    share = [] if raw else [f"composition/share/class_{c}" for c in classes]
    weight = [f"composition/weight/class_{c}" for c in classes]
    if target.kind == "dense":
        examples = [f"composition/examples/class_{c}" for c in classes]
        tags = ["composition/batch_size", "composition/elements", *count, *share, *examples, *weight]
    else:
        tags = ["composition/batch_size", *count, *share, *weight, "composition/no_label"]
    tags += [] if raw else ["composition/no_minority"]
    return [target.prefix + tag for tag in tags]


def dense_composition_row(one_hot: tf.Tensor, labelled: tf.Tensor, sample_weight: tf.Tensor | None) -> list[tf.Tensor]:
    """A batch's composition row for dense labels, in the order of `output_composition_tags(raw=True)`.

    Args:
      one_hot: (B, N, K) float32 class membership of each element (zeros for an ignored or unknown label).
      labelled: (B, N) float32, 1 for every element that is not ignored.
      sample_weight: (B, 1) or (B, N) weights, or None (every element weighs 1).

    Returns:
      `[batch size (1,), labelled elements (1,), counts (K,), examples holding each class (K,), weights (K,)]`.
    """
    counts = tf.reduce_sum(one_hot, axis=[0, 1])
    batch_size = tf.cast(tf.shape(one_hot)[:1], tf.float32)
    elements = tf.reduce_sum(labelled)[None]
    examples = tf.reduce_sum(tf.reduce_max(one_hot, axis=1), axis=0)
    if sample_weight is None:
        return [batch_size, elements, counts, examples, counts]
    weights = tf.reduce_sum(one_hot * tf.cast(sample_weight, tf.float32)[..., None], axis=[0, 1])
    return [batch_size, elements, counts, examples, weights]


def multi_label_composition_row(positives: tf.Tensor, sample_weight: tf.Tensor | None) -> list[tf.Tensor]:
    """A batch's composition row for multi-label targets, in the order of `output_composition_tags(raw=True)`.

    Args:
      positives: (B, L) float32, 1 where an example holds label l.
      sample_weight: (B, 1) weights, (B, L) weights per example and label (`data.dense.label_weighted`), or None.

    Returns:
      `[batch size (1,), positives per label (L,), their total sample weight (L,), examples with no label (1,)]`.
    """
    batch_size, counts, weights = composition_row(positives, None)
    if sample_weight is not None:
        weights = tf.reduce_sum(positives * tf.cast(sample_weight, tf.float32), axis=-2)
    no_label = tf.reduce_sum(tf.cast(tf.equal(tf.reduce_sum(positives, axis=-1), 0.0), tf.float32))[None]
    return [batch_size, counts, weights, no_label]


# The columns a per-class-gradient row gains when the optimizer accumulates gradients over several batches.
ACCUMULATION_TAGS = ["gradients/accumulation/update_applied", "gradients/accumulation/batches_in_split"]
# The column marking the steps after which an optimizer with `use_ema=True` overwrote the weights.
EMA_OVERWRITE_TAG = "gradients/ema_overwrite"


def gradient_tags(num_classes: int, *, accumulation: bool = False, class_names: list[str] | None = None) -> list[str]:
    """The columns of a per-class-gradient row (TensorBoard tags, in row order); see `PerClassGradients`.

    With `accumulation` (an optimizer's `gradient_accumulation_steps`) the row ends with `ACCUMULATION_TAGS`.
    """
    classes = class_labels(num_classes, class_names)
    return (
        ["loss/total", "loss/regularization"]
        + [f"loss/class_{c}" for c in classes]
        + ["gradients/norm/total", "gradients/norm/applied"]
        + [f"gradients/norm/class_{c}" for c in classes]
        + [f"gradients/cosine/class_{c}_vs_rest" for c in classes]
        + ["gradients/update_norm"]
        + [f"gradients/effective_step/class_{c}" for c in classes]
        + [f"gradients/examples/class_{c}" for c in classes]
        + (ACCUMULATION_TAGS if accumulation else [])
    )


def output_gradient_tags(targets: list, *, accumulation: bool = False) -> list[str]:
    """The columns of a per-class-gradient row over observed outputs (`_labels.Target`s), in row order.

    One output of a single-output model: `gradient_tags`. Otherwise the whole step's columns (`loss/total`,
    `loss/regularization`, `gradients/norm/total`, `gradients/norm/applied`, `gradients/update_norm`), then per
    output its classes' columns, prefixed with the output's name (`main/loss/class_1`, ...).
    """
    if len(targets) == 1 and targets[0].name is None:
        return gradient_tags(targets[0].num_classes, accumulation=accumulation, class_names=list(targets[0].labels))
    tags = ["loss/total", "loss/regularization", "gradients/norm/total", "gradients/norm/applied"]
    tags += ["gradients/update_norm"]
    for target in targets:
        per_class = ["loss/class_{}", "gradients/norm/class_{}", "gradients/cosine/class_{}_vs_rest"]
        per_class += ["gradients/effective_step/class_{}", "gradients/examples/class_{}"]
        tags += [target.prefix + tag.format(c) for tag in per_class for c in target.labels]
    return tags + (ACCUMULATION_TAGS if accumulation else [])


def reduce_loss(
    reduction: str, values: tf.Tensor, sample_weight: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """A Keras `Loss`'s additive reduction (`ADDITIVE_REDUCTIONS`) of per-example values over the batch axis.

    As `Loss.__call__` reduces: the values weighted by the sample weights, summed, and divided by the batch size
    (`sum_over_batch_size`, `mean`), by the total sample weight (`mean_with_sample_weight` with weights) or by 1
    (`sum`); a zero divisor gives 0.

    Args:
      reduction: the loss's `reduction`.
      values: (..., B) per-example loss values.
      sample_weight: (..., B) weights, or None.

    Returns:
      `(loss (...,), weighted values (..., B), divisor (...,))`.
    """
    if sample_weight is not None:
        values = values * tf.cast(sample_weight, values.dtype)
    sums = tf.reduce_sum(values, axis=-1)
    if reduction == "sum":
        return sums, values, tf.ones_like(sums)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = tf.reduce_sum(tf.cast(sample_weight, values.dtype), axis=-1)
    else:
        divisor = tf.fill(tf.shape(sums), tf.cast(tf.shape(values)[-1], values.dtype))
    return tf.math.divide_no_nan(sums, divisor), values, divisor


# Codes of the additive reductions by what they divide a batch's weighted sum by: the batch size, the total sample
# weight, or 1 (`reduce_loss_by_code`).
REDUCTION_CODES = {"sum_over_batch_size": 0, "mean": 0, "mean_with_sample_weight": 1, "sum": 2}


def reduce_loss_by_code(
    codes: tf.Tensor, values: tf.Tensor, sample_weight: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`reduce_loss` with a reduction per row: `codes` (R,) of `REDUCTION_CODES` for values (R, B), so rows of
    several reductions reduce in one traced computation. Each row's loss, weighted values and divisor equal
    `reduce_loss` with its own reduction."""
    if sample_weight is not None:
        values = values * tf.cast(sample_weight, values.dtype)
    sums = tf.reduce_sum(values, axis=-1)
    size = tf.fill(tf.shape(sums), tf.cast(tf.shape(values)[-1], values.dtype))
    total = size if sample_weight is None else tf.reduce_sum(tf.cast(sample_weight, values.dtype), axis=-1)
    divisor = tf.where(tf.equal(codes, 1), total, tf.where(tf.equal(codes, 2), tf.ones_like(sums), size))
    return tf.math.divide_no_nan(sums, divisor), values, divisor


def class_losses(values: tf.Tensor, one_hot: tf.Tensor, divisor: tf.Tensor) -> tf.Tensor:
    """Each class's part of a reduced loss (..., K): the batch loss restricted to the class's examples, with the
    whole batch's divisor, so the parts sum to the loss (`reduce_loss` gives `values` and `divisor`)."""
    sums = tf.linalg.matvec(tf.cast(one_hot, values.dtype), values, transpose_a=True)
    return tf.math.divide_no_nan(sums, divisor[..., None])


def class_order(counts: tf.Tensor) -> tf.Tensor:
    """The classes by their examples in the batch, most first (the first of equals first): (..., K) indices."""
    return tf.argsort(counts, direction="DESCENDING", stable=True)


def class_masks(one_hot: tf.Tensor, order: tf.Tensor) -> tf.Tensor:
    """One-hot membership (..., B, K) with its classes in `order` (`class_order`): column i masks the examples of
    class order[i]."""
    return tf.gather(one_hot, order, axis=-1, batch_dims=order.shape.rank - 1)


def per_class_gradients(data_gradient: tf.Tensor, others: list[tf.Tensor], order: tf.Tensor) -> tf.Tensor:
    """Every class's gradient (..., K, P), in class order.

    The classes' gradients sum to the data loss's, so the class with the most examples (order[0]) is that gradient
    minus the others': K - 1 backward passes, and the classes sum to the total also where it is near zero.

    Args:
      data_gradient: (..., P) the flattened gradient of the loss without its regularization terms.
      others: K - 1 flattened gradients (..., P) of classes order[1:], in that order.
      order: (..., K) `class_order` of the batch.
    """
    axis = order.shape.rank - 1
    largest = data_gradient - tf.add_n(others)
    return tf.gather(tf.stack([largest, *others], axis=axis), tf.argsort(order), axis=axis, batch_dims=axis)


def gradient_row(
    per_class: tf.Tensor,
    total: tf.Tensor,
    applied: tf.Tensor | None,
    update: tf.Tensor,
    losses: tf.Tensor,
    counts: tf.Tensor,
    *,
    split: tuple[tf.Tensor, tf.Tensor] | None = None,
) -> list[tf.Tensor]:
    """A step's per-class-gradient row in the order of `gradient_tags`, as parts along the last axis.

    Args:
      per_class: (..., K, P) each class's gradient (`per_class_gradients`).
      total: (..., P) the gradient of the loss, before the optimizer's clipping.
      applied: (..., P) the gradient after clipping, or None when the optimizer does not clip.
      update: (..., P) the change of the trainable weights the step made.
      losses: (..., 2 + K) the loss, its regularization part and each class's part.
      counts: (..., K) examples per class.
      split: `(per_class, total)` of the gradient the update used, if it is not this batch's (an update from
        gradients accumulated over several batches): the update is split in proportion to them.

    Returns:
      `[losses, total norm, applied norm, class norms, cosines class vs rest, update norm, effective steps,
      counts]`, each (..., n).
    """
    k = per_class.shape[-2]
    # Every norm, cosine and share from a few ops on stacked (rows, P) matrices: a recorded step's cost is mostly
    # the number of ops the executor runs, not their size.
    rest = tf.reduce_sum(per_class, axis=-2, keepdims=True) - per_class
    split_per_class, split_total = (per_class, total) if split is None else split
    shares = update[..., None, :] * tf.math.divide_no_nan(split_per_class, split_total[..., None, :])
    # Rows: the total gradient, the applied one (when clipping makes it another vector), the classes', the update,
    # the shares and the rests. Without clipping the total's norm is logged twice (packing one tensor twice trips
    # a graph rewrite under tf.distribute).
    heads = [total] if applied is None else [total, applied]
    first = len(heads)
    matrix = tf.concat([tf.stack(heads, axis=-2), per_class, update[..., None, :], shares, rest], axis=-2)
    norms = tf.norm(matrix, axis=-1)
    class_norms, rest_norms = norms[..., first : first + k], norms[..., first + 1 + 2 * k :]
    cosines = tf.math.divide_no_nan(tf.reduce_sum(per_class * rest, axis=-1), class_norms * rest_norms)
    return [
        losses,
        norms[..., :1],
        norms[..., first - 1 : first],
        class_norms,
        cosines,
        norms[..., first + k : first + 1 + 2 * k],
        counts,
    ]


def joined_gradient_rows(rows: list[list[tf.Tensor]]) -> list[tf.Tensor]:
    """One row in the order of `output_gradient_tags` from each observed output's `gradient_row`.

    The rows share the whole step's quantities (the loss, its regularization part, the gradient norms and the update
    norm), taken from the first; each output adds its classes' losses, norms, cosines, effective steps and counts.
    """
    losses, total, applied, _, _, steps, _ = rows[0]
    joined = [losses[..., :2], total, applied, steps[..., :1]]
    # `steps` holds the update norm, then the classes' effective steps.
    for losses, _, _, norms, cosines, steps, counts in rows:
        joined += [losses[..., 2:], norms, cosines, steps[..., 1:], counts]
    return joined
