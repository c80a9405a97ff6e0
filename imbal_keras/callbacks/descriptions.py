"""What each logged tag means, for TensorBoard: a description per tag and a custom-scalars layout per class.

TensorBoard shows a tag's description beside its chart; each says what the value is, its unit and how it is
reduced over the batch. The layout (TensorBoard's Custom Scalars tab) puts each class's gradient norm, effective
step, share of the batch and count side by side.
"""

from __future__ import annotations

import re

from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary

__all__ = ["describe", "is_integer", "layout_summary"]

# (tag pattern, description); `{c}` in a description is the class the tag names.
_DESCRIPTIONS = [
    (r"composition/batch_size", "Examples in the batch (the global batch under tf.distribute). Unit: examples."),
    (
        r"composition/count/class_(.+)",
        "Examples of class {c} in the batch (dense labels: its pixels or tokens; multi-label: the examples holding "
        "label {c}). Unit: examples (elements), summed over the batch.",
    ),
    (
        r"composition/share/class_(.+)",
        "Class {c}'s share of the batch: its count / batch size (dense labels: / the labelled elements). "
        "Unit: fraction.",
    ),
    (
        r"composition/elements",
        "Labelled pixels or tokens in the batch (elements with ignore_class left out). Unit: elements.",
    ),
    (
        r"composition/examples/class_(.+)",
        "Examples of the batch holding at least one pixel or token of class {c}. Unit: examples.",
    ),
    (r"composition/no_label", "Examples of the batch holding no positive label (multi-label). Unit: examples."),
    (
        r"composition/weight/class_(.+)",
        "Total sample weight of class {c}'s examples (sample weights and class_weight=; 1 per example without). "
        "Unit: weight, summed over the batch.",
    ),
    (r"composition/no_minority", "1 if the batch had no example of the minority class, else 0. Unit: flag."),
    (r"loss/total", "The training loss L of the batch, as the optimizer saw it (reduced as the compiled loss)."),
    (
        r"loss/regularization",
        "L_reg: the part of L from model.losses (regularizers, add_loss) and whatever a custom compute_loss adds "
        "to the compiled loss. Unit: loss.",
    ),
    (
        r"loss/class_(.+)",
        "L_{c}: the compiled loss summed over class {c}'s examples and divided by the whole batch's denominator "
        "(not a per-class mean), so sum_c L_c + L_reg = L. Unit: loss.",
    ),
    (r"gradients/norm/total", "||grad L|| over all trainable weights, before clipping and loss scaling. L2 norm."),
    (
        r"gradients/norm/applied",
        "L2 norm of the gradient the update used, after clipnorm/global_clipnorm/clipvalue (with gradient "
        "accumulation: the mean of the update's batches, 0 in batches that apply nothing).",
    ),
    (r"gradients/norm/class_(.+)", "||grad L_{c}||, L2 norm over all trainable weights; 0 without class {c}."),
    (
        r"gradients/cosine/class_(.+)_vs_rest",
        "Cosine between grad L_{c} and the sum of the other classes' gradients; 0 when either is zero.",
    ),
    (r"gradients/update_norm", "||delta theta||: L2 norm of the change of the trainable weights in this step."),
    (
        r"gradients/effective_step/class_(.+)",
        "L2 norm of class {c}'s share of the update: delta theta * grad L_{c} / grad L, element-wise "
        "(lr * ||grad L_{c}|| for plain SGD).",
    ),
    (
        r"gradients/examples/class_(.+)",
        "Examples of class {c} in the batch (dense labels: its pixels or tokens; multi-label: the examples holding "
        "label {c}). Unit: examples (elements).",
    ),
    (
        r"gradients/accumulation/update_applied",
        "1 in the batch where the optimizer applies the accumulated update (gradient_accumulation_steps), else 0.",
    ),
    (
        r"gradients/accumulation/batches_in_split",
        "Batches whose class gradients split the applied update (k, fewer if the fit began inside an update); "
        "0 in batches that apply nothing.",
    ),
    (
        r"gradients/ema_overwrite",
        "1 if the optimizer overwrote the weights with their moving average (use_ema=True) after this step: "
        "update_norm then includes the overwrite, which no class's gradient caused.",
    ),
    (r"train/loss", "The training loss of the batch (from Keras's running mean). Unit: loss."),
]
_INTEGER = re.compile(
    r"composition/(batch_size|count/|elements|examples/|no_label|no_minority)"
    r"|gradients/(examples/|accumulation/|ema_overwrite)"
)
# Tags of one output of a model with several start with the output's name: `main/composition/count/class_1`.
_OUTPUT_PREFIX = re.compile(r"(?:([^/]+)/)?((?:composition|loss|gradients)/.+)")


def describe(tag: str) -> str:
    """The description of a logged tag (empty for a tag this module does not know)."""
    match = _OUTPUT_PREFIX.fullmatch(tag)
    output, own = match.groups() if match else (None, tag)
    for pattern, text in _DESCRIPTIONS:
        found = re.fullmatch(pattern, own)
        if found:
            described = text.format(c=found.group(1) if found.groups() else "")
            return f"Output {output}: {described}" if output else described
    return ""


def is_integer(tag: str) -> bool:
    """Whether a tag's values are whole numbers (counts and flags): integer columns in the DataFrame."""
    match = _OUTPUT_PREFIX.fullmatch(tag)
    return _INTEGER.match(match.group(2) if match else tag) is not None


def layout_summary(targets: list):
    """A custom-scalars layout `Summary`: for each class of each observed output, its gradient norm, effective step,
    share and count.

    Args:
      targets: the observed outputs (`_labels.Target`: their tag prefix and how the tags name their classes).
    """
    charts = [
        ("gradient norm", "gradients/norm/class_{}"),
        ("effective step", "gradients/effective_step/class_{}"),
        ("share of the batch", "composition/share/class_{}"),
        ("count in the batch", "composition/count/class_{}"),
    ]
    categories = [
        layout_pb2.Category(
            title=f"{target.prefix}class {label}",
            chart=[
                layout_pb2.Chart(
                    title=f"{title}, {target.prefix}class {label}",
                    multiline=layout_pb2.MultilineChartContent(
                        tag=[f"^{re.escape(target.prefix + tag.format(label))}$"]
                    ),
                )
                for title, tag in charts
            ],
        )
        for target in targets
        for label in target.labels
    ]
    return custom_scalar_summary.pb(layout_pb2.Layout(category=categories))
