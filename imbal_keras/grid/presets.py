"""Named grids: each preset is data (a description, axes, shared settings, the question its verdict answers), and
`spec_from_preset` turns one into a `sweep.GridSpec`. Adding a preset is adding an entry to `PRESETS`.

Like `sweep`, this module never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from imbal_keras.errors import check
from imbal_keras.grid.sweep import LONG_TAIL_QUESTION, SEED_QUESTION, GridSpec, Question, make_spec

# The value a preset gives a seed it holds fixed while `seed` varies the others (outside every `seed` axis).
FIXED_SEED = 1000
# The seed question for pixels: foreground crops against pixel class weights and a Dice loss, on mean IoU.
PIXEL_QUESTION = Question(compare="patches:class_weight,dice", metric="test_mean_iou")


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named grid.

    Attributes:
      description: one line for `--help` and the docs.
      axes: flat name -> values.
      base: flat settings every run of the preset shares (budget, data size, model).
      question: what its verdict answers.
    """

    description: str
    axes: Mapping[str, tuple]
    base: Mapping[str, Any]
    question: Question = SEED_QUESTION


PRESETS: dict[str, Preset] = {
    "seed_question": Preset(
        description=(
            "Does upsampling converge faster and vary less than class weights, or is it equivalent? Synthetic 1:99, "
            "6,000 training examples, batch 16, SGD, 400 steps for every strategy; none, class_weight (both "
            "normalisations x both reductions), upsample; 12 training seeds (initial weights and batch order, paired "
            "across strategies) on each of 2 datasets (data_seed), plus the same seeds with the initial weights "
            "fixed (init_seed=1000: only the batch order varies) and with the batch order fixed (order_seed=1000: "
            "only the initial weights vary), so SGD's spread is measured by source; a 39,000-example test split "
            "keeps one AUPRC's evaluation noise small (576 runs)."
        ),
        axes={
            "strategy": ("none", "class_weight", "upsample"),
            "class_weight_normalization": ("mean_one", "sum_to_num_classes"),
            "weight_reduction": ("sum_over_batch_size", "mean_with_sample_weight"),
            "data_seed": (0, 1),
            "seed": tuple(range(12)),
            "init_seed": (-1, FIXED_SEED),
            "order_seed": (-1, FIXED_SEED),
        },
        base={
            "dataset": "synthetic",
            "imbalance_ratio": 99.0,
            "batch_size": 16,
            "optimizer": "sgd",
            "learning_rate": 0.05,
            # 6,000 training, 5,000 validation and 39,000 test examples (60, 50 and 390 positives).
            "num_examples": 50_000,
            "validation_fraction": 0.1,
            "test_fraction": 0.78,
            "steps": 400,
            "eval_every": 50,
            "hidden_units": (32, 32),
        },
        question=SEED_QUESTION,
    ),
    "long_tail": Preset(
        description=(
            "The long-tail literature's strategies beside the textbook ones on CIFAR-10-LT-like data: synthetic "
            "K=10, exponential profile, rho=100, balanced validation and test; none, class_weight, upsample, "
            "stratified, focal, class_balanced, logit_adjusted, ldam (with deferred re-weighting), sqrt_sampling, "
            "progressive_sampling; 10 seeds (100 runs): with the exact sign-flip test the smallest paired p is "
            "2 / 2^n, which survives Holm over the 9 comparisons with none only from n = 9."
        ),
        axes={
            "strategy": (
                "none",
                "class_weight",
                "upsample",
                "stratified",
                "focal",
                "class_balanced",
                "logit_adjusted",
                "ldam",
                "sqrt_sampling",
                "progressive_sampling",
            ),
            "seed": tuple(range(10)),
        },  # fmt: skip
        base={
            "dataset": "synthetic",
            "num_classes": 10,
            "imbalance_ratio": 100.0,
            "class_profile": "exponential",
            "balanced_evaluation": True,
            "num_examples": 20_000,
            "batch_size": 64,
            "optimizer": "sgd",
            "learning_rate": 0.05,
            "steps": 1000,
            "eval_every": 100,
            "hidden_units": (64, 64),
        },
        question=LONG_TAIL_QUESTION,
    ),
    "pixel_question": Preset(
        description=(
            "Do foreground crops (patches, nnU-Net's 33%) converge faster and vary less than pixel class weights or "
            "a Dice loss? Embedded synthetic segmentation (32x32 images, two rare disc classes, 0.6% and 0.3% of "
            "the pixels), a tiny U-Net, batch 8, Adam 0.01, 300 steps; test mean IoU every 50 steps; 10 training "
            "seeds paired across strategies on each of 2 datasets (data_seed) (60 runs)."
        ),
        axes={"strategy": ("class_weight", "dice", "patches"), "data_seed": (0, 1), "seed": tuple(range(10))},
        base={
            "dataset": "synthetic_segmentation",
            "batch_size": 8,
            "optimizer": "adam",
            "learning_rate": 0.01,
            "steps": 300,
            "eval_every": 50,
            "gradient_every_n_steps": 0,
        },
        question=PIXEL_QUESTION,
    ),
}


def spec_from_preset(name: str, *, axes: Mapping[str, Sequence] | None = None, **base: Any) -> GridSpec:
    """The spec of preset `name`, with `axes` and `base` settings overriding the preset's.

    Raises:
      UserInputError: unknown preset; the message lists the known ones.
    """
    check(name in PRESETS, f"preset must be one of {', '.join(PRESETS)}. Received: preset={name!r}", argument="preset")
    preset = PRESETS[name]
    merged_axes = {**preset.axes, **{k: tuple(v) for k, v in (axes or {}).items()}}
    for field in base:  # a setting given once replaces the preset's axis over it
        merged_axes.pop(field, None)
    return make_spec({**preset.base, **base}, merged_axes, question=preset.question)


__all__ = ["FIXED_SEED", "PIXEL_QUESTION", "PRESETS", "Preset", "spec_from_preset"]
