"""Losses as Keras losses: the long-tail losses for one label per example (`long_tail`), and the losses of dense
and multi-label targets (`dense`): soft Dice and Tversky, focal per pixel, cross-entropy + Dice, and a binary
cross-entropy that keeps one value per label.

Every name is importable from `imbal_keras.losses`; the modules say how each loss is computed.
"""

from imbal_keras.losses.dense import (
    CrossEntropyDiceLoss,
    DenseFocalLoss,
    DiceLoss,
    LabelwiseBinaryCrossentropy,
    TverskyLoss,
)
from imbal_keras.losses.long_tail import (
    DeferredReweighting,
    DeferredReweightingSwitch,
    FocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    adjust_probabilities,
    class_balanced_weights,
    cross_entropy,
    ldam_margins,
    minimising_distribution,
)

__all__ = [
    "CrossEntropyDiceLoss",
    "DeferredReweighting",
    "DeferredReweightingSwitch",
    "DenseFocalLoss",
    "DiceLoss",
    "FocalLoss",
    "LDAMLoss",
    "LabelwiseBinaryCrossentropy",
    "LogitAdjustedLoss",
    "TverskyLoss",
    "adjust_probabilities",
    "class_balanced_weights",
    "cross_entropy",
    "ldam_margins",
    "minimising_distribution",
]
