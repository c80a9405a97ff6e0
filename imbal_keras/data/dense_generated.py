"""Data with dense and multi-label targets: embedded synthetic sets (seeded, no download) and the loader of a user's
own arrays (`imbal_keras.data.sources` reads `.npz` files and Python functions into it).

Each returns `Data` whose splits hold the targets as they are: `kind` is `segmentation` (x (N, H, W, C) float32,
y (N, H, W) int32 class ids), `sequence` (x (N, T) int32 tokens, y (N, T) int32 tags) or `multilabel`
(x (N, D) float32, y (N, L) int32 of 0/1); `num_classes` is K (or L). Dense data is split stratified on the rarest
class each example contains, multi-label data by iterative stratification, so every split sees the rare classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from imbal_keras.data.dense_shares import checked_multilabel, presence, rarest_present, valid_pixels
from imbal_keras.data.splits import SPLITS, Data, Layout, Split, iterative_stratification, layout_of, stratified_split
from imbal_keras.errors import check

__all__ = [
    "IGNORE_KINDS",
    "KINDS",
    "SYNTHETIC",
    "check_ignore_label",
    "dense_from_arrays",
    "dense_layout",
    "multilabel_tags",
    "segmentation",
    "token_sequences",
]

KINDS = ("segmentation", "sequence", "multilabel")
# The kinds whose targets may hold an ignore label: class ids per pixel or token.
IGNORE_KINDS = ("segmentation", "sequence")


def check_ignore_label(ignore_label: int | None, kind: str, where: str = "data") -> None:
    """Refuses an ignore label below 0, or one given for targets other than masks and label sequences.

    Raises:
      UserInputError: as above, in one line naming `ignore_label`.
    """
    if ignore_label is None:
        return
    check(
        kind in IGNORE_KINDS,
        f"ignore_label applies to masks and label sequences, not to {kind} data ({where}); leave it at -1. "
        f"Received: ignore_label={ignore_label}",
        argument="ignore_label",
    )
    check(
        int(ignore_label) == ignore_label and ignore_label >= 0,
        f"ignore_label must be an integer >= 0 (255 is the common border label). Received: ignore_label={ignore_label}",
        argument="ignore_label",
    )


def segmentation(
    *,
    num_examples: int = 512,
    size: int = 32,
    presence_rates: tuple[float, ...] = (0.5, 0.25),
    radius: int = 2,
    **layout: Any,
) -> Data:
    """32x32 grey images of noise with rare small discs: class 0 is background, class c >= 1 a disc of radius
    `radius` whose brightness tells its class (+1.5 c over unit noise).

    Image i holds a disc of class c with probability `presence_rates[c - 1]`, at a uniform position (later
    classes drawn over earlier ones), so the rare classes cover about 1% of the pixels: with the defaults 0.63%
    and 0.31% (a disc of radius 2 is 13 pixels of 1,024).

    Args:
      num_examples: N.
      size: image height and width.
      presence_rates: per rare class, the probability that an image contains it.
      radius: disc radius in pixels.
      **layout: `Layout` fields (`validation_fraction`, `test_fraction`, `seed`).
    """
    settings = layout_of(layout)
    rng = np.random.default_rng([settings.seed, 25, 1])
    rows, cols = np.mgrid[:size, :size]
    masks = np.zeros((num_examples, size, size), np.int32)
    for c, rate in enumerate(presence_rates, start=1):
        has = np.flatnonzero(rng.uniform(size=num_examples) < rate)
        centre = rng.integers(radius, size - radius, size=(len(has), 2))
        disc = (rows[None] - centre[:, :1, None]) ** 2 + (cols[None] - centre[:, 1:, None]) ** 2 <= radius**2
        masks[has] = np.where(disc, c, masks[has])
    images = rng.normal(size=masks.shape) + 1.5 * masks
    names = ("background", *(f"object_{c}" for c in range(1, len(presence_rates) + 1)))
    return _dense_data(images[..., None].astype(np.float32), masks, names, "segmentation", settings)


def token_sequences(
    *,
    num_examples: int = 1024,
    length: int = 32,
    vocabulary: int = 64,
    tag_rates: tuple[float, ...] = (0.03, 0.01),
    **layout: Any,
) -> Data:
    """Token sequences with rare tags: tag 0 is "outside", tag c >= 1 marks a token of its own vocabulary range.

    Every token is tagged c with probability `tag_rates[c - 1]`; a tagged token is drawn from the 4 token ids
    reserved for its tag, an untagged one from the other ids, except that one in four untagged tokens is drawn from
    a reserved range too (so the token alone does not give the tag; its left neighbour, a marker token, does).

    Args:
      num_examples: N.
      length: T.
      vocabulary: token ids 0..V-1, V > 5 * (number of tags + 1).
      tag_rates: per rare tag, the share of tokens it marks.
      **layout: `Layout` fields.
    """
    settings = layout_of(layout)
    num_tags = len(tag_rates) + 1
    check(
        vocabulary > 5 * num_tags,
        f"vocabulary must exceed 5 per tag ({5 * num_tags}). Received: vocabulary={vocabulary}",
        argument="vocabulary",
    )
    rng = np.random.default_rng([settings.seed, 25, 2])
    shares = np.array([1 - sum(tag_rates), *tag_rates])
    tags = rng.choice(num_tags, size=(num_examples, length), p=shares).astype(np.int32)
    tags[:, 0] = 0  # the first token has no left neighbour to carry the marker
    reserved = 4 * num_tags  # ids 0..reserved-1 belong to tags (4 each); id `reserved` is the marker
    free = rng.integers(reserved + 1, vocabulary, size=tags.shape)
    decoy = rng.uniform(size=tags.shape) < 0.25
    own = 4 * tags + rng.integers(0, 4, size=tags.shape)
    tokens = np.where(tags > 0, own, np.where(decoy, 4 * rng.integers(1, num_tags, size=tags.shape), free))
    tokens[:, :-1] = np.where(tags[:, 1:] > 0, reserved, tokens[:, :-1])
    names = ("outside", *(f"tag_{c}" for c in range(1, num_tags)))
    return _dense_data(tokens.astype(np.int32), tags, names, "sequence", settings)


def multilabel_tags(
    *,
    num_examples: int = 2048,
    num_features: int = 16,
    num_labels: int = 8,
    imbalance_ratio: float = 100.0,
    **layout: Any,
) -> Data:
    """Multi-label tags with long-tailed label frequencies: label l is on with probability
    0.3 r^(-l / (L - 1)), r = `imbalance_ratio` (from 0.3 for label 0 down to 0.3 / r), independently.

    Features are x = y M + noise, M (L, D) a fixed random matrix with unit-variance entries and the noise unit
    Gaussian, so each label is linearly visible but blurred by the others.

    Args:
      num_examples, num_features, num_labels: N, D and L.
      imbalance_ratio: r >= 1, the most common label's frequency over the rarest's.
      **layout: `Layout` fields.
    """
    settings = layout_of(layout)
    check(
        imbalance_ratio >= 1 and num_labels >= 2,
        f"imbalance_ratio must be >= 1 with num_labels >= 2. Received: imbalance_ratio={imbalance_ratio!r}, "
        f"num_labels={num_labels!r}",
        argument="imbalance_ratio",
    )
    rng = np.random.default_rng([settings.seed, 25, 3])
    rates = 0.3 * float(imbalance_ratio) ** (-np.arange(num_labels) / (num_labels - 1))
    y = (rng.uniform(size=(num_examples, num_labels)) < rates).astype(np.int32)
    x = y @ rng.normal(size=(num_labels, num_features)) + rng.normal(size=(num_examples, num_features))
    names = tuple(f"label_{j}" for j in range(num_labels))
    return _dense_data(x.astype(np.float32), y, names, "multilabel", settings)


def dense_from_arrays(data, *, kind: str | None = None, ignore_label: int | None = None, **options: Any) -> Data:
    """Dense or multi-label data from arrays: `(x, y)` (split here) or `{"train": (x, y), "test": (x, y)
    [, "validation": (x, y)]}`.

    Args:
      data: the arrays, as above; `y` masks (N, H, W) / (N, H, W, 1), sequences (N, T) or multi-label (N, L).
      kind: one of `KINDS`; None infers it: 3-D or 4-D targets are masks, 2-D targets with x's first two
        dimensions are sequences, other 2-D targets multi-label.
      ignore_label: a label that is no class (masks and label sequences): not counted in `num_classes`, kept in
        the targets, carried as `Data.ignore_label`; it must lie above the class ids.
      **options: `name=` (for logs), `where=` (for messages) and `Layout` fields.

    Raises:
      UserInputError: the wrong structure or shapes, a kind that does not fit the targets, or an ignore label
        for multi-label targets or among the class ids.
    """
    name, where = options.pop("name", "arrays"), options.pop("where", "data")
    settings = layout_of(options)
    if isinstance(data, Mapping):
        check(
            {"train", "test"} <= set(data) <= set(SPLITS),
            f"{where}: expected the splits train and test (and validation). Received: keys {sorted(data)}",
            argument="dataset",
        )
        given = {s: _pair(data[s], f"{where} ({s})") for s in SPLITS if s in data}
        kind = _kind(kind, *given["train"], where)
        check_ignore_label(ignore_label, kind, where)
        if "validation" not in given:
            x, y = given["train"]
            held = _split_index(y, kind, settings, ignore_label, hold_out=("validation",))
            given.update({s: (x[i], y[i]) for s, i in held.items()})
        return _as_data(given, kind, ignore_label, name)
    x, y = _pair(data, where)
    kind = _kind(kind, x, y, where)
    check_ignore_label(ignore_label, kind, where)
    index = _split_index(y, kind, settings, ignore_label)
    return _as_data({s: (x[i], y[i]) for s, i in index.items()}, kind, ignore_label, name)


def dense_layout(layout: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The `Layout` settings dense data takes (split shares and seed) out of a loader's; a long-tail profile is
    refused.

    Raises:
      UserInputError: `imbalance_ratio` or `balanced_evaluation` set for dense or multi-label data.
    """
    check(
        not layout.get("imbalance_ratio") and not layout.get("balanced_evaluation"),
        f"{where}: dense and multi-label data keep their own class ratio; imbalance_ratio and balanced_evaluation "
        f"apply to single-label data. Received: imbalance_ratio={layout.get('imbalance_ratio')}",
        argument="imbalance_ratio",
    )
    return {k: layout[k] for k in ("validation_fraction", "test_fraction", "seed") if k in layout}


def _dense_data(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], kind: str, settings: Layout) -> Data:
    index = _split_index(y, kind, settings, None)
    return _as_data({s: (x[i], y[i]) for s, i in index.items()}, kind, None, f"synthetic_{kind}", names)


def _split_index(
    y: np.ndarray, kind: str, settings: Layout, ignore_label: int | None, *, hold_out=("test", "validation")
) -> dict[str, np.ndarray]:
    """Indices per split: iterative stratification for multi-label targets, else stratified on the rarest class
    each example contains (groups of fewer examples than splits joined to the largest group)."""
    if kind == "multilabel":
        shares = [{"test": settings.test_fraction, "validation": settings.validation_fraction}[s] for s in hold_out]
        parts = iterative_stratification(y, [1 - sum(shares), *shares], seed=settings.seed)
        rng = np.random.default_rng([settings.seed, 2])
        return {split: rng.permutation(part) for split, part in zip(("train", *hold_out), parts, strict=True)}
    rarest = rarest_present(presence(y, _num_classes(y, ignore_label), ignore_label=ignore_label))
    counts = np.bincount(rarest)
    # A group too small to give every split an example joins the largest group rather than stopping the split.
    rarest = np.where(counts[rarest] <= len(hold_out), np.argmax(counts), rarest)
    present, groups = np.unique(rarest, return_inverse=True)
    names = tuple(f"(examples whose rarest class is {c})" for c in present)
    return stratified_split(groups, len(names), names, "data", settings, hold_out=hold_out)


def _num_classes(y: np.ndarray, ignore_label: int | None) -> int:
    valid = y[valid_pixels(y, ignore_label)]
    return max(int(valid.max()) + 1 if valid.size else 2, 2)


def _kind(kind: str | None, x: np.ndarray, y: np.ndarray, where: str) -> str:
    """The kind of targets `y` holds: the one given, checked, or the one their shape says."""
    inferred = "segmentation" if y.ndim >= 3 else "sequence" if x.shape[:2] == y.shape else "multilabel"
    if kind is None:
        kind = inferred
    check(kind in KINDS, f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}", argument="kind")
    shapes = {"segmentation": y.ndim == 3, "sequence": y.ndim == 2, "multilabel": y.ndim == 2}
    check(
        shapes[kind] and (kind != "segmentation" or x.shape[1:3] == y.shape[1:]),
        f"{where}: targets of shape {y.shape} with inputs {x.shape} are not {kind} targets. Received: kind={kind!r}",
        argument="kind",
    )
    if kind == "multilabel":
        checked_multilabel(y)
    return kind


def _pair(value, where: str) -> tuple[np.ndarray, np.ndarray]:
    """`(x, y)` as arrays: a trailing axis of 1 on masks dropped, a channel axis added to (N, H, W) images."""
    check(
        isinstance(value, (tuple, list)) and len(value) == 2,
        f"{where}: expected (x, y) or a dict of splits. Received: {type(value).__name__}",
        argument="dataset",
    )
    x, y = np.asarray(value[0]), np.asarray(value[1])
    if y.ndim == 4 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.ndim == 3 and x.ndim == 3:
        x = x[..., None]
    check(
        len(x) == len(y) and len(y) > 0 and np.issubdtype(y.dtype, np.integer) and y.ndim in (2, 3),
        f"{where}: expected x (N, ...) and integer targets (N, H, W), (N, T) or (N, L). "
        f"Received: x.shape={x.shape}, y.shape={y.shape}, y.dtype={y.dtype}",
        argument="dataset",
    )
    return x, y.astype(np.int32)


def _as_data(given: dict, kind: str, ignore_label: int | None, name: str, names: tuple[str, ...] = ()) -> Data:
    ys = [y for _, y in given.values()]
    num_classes = ys[0].shape[1] if kind == "multilabel" else max(_num_classes(y, ignore_label) for y in ys)
    check(
        ignore_label is None or ignore_label >= num_classes,
        f"ignore_label must lie above the class ids 0..{num_classes - 1}, or the classes below it would be empty "
        f"({name}). Received: ignore_label={ignore_label}",
        argument="ignore_label",
    )
    names = names or tuple(f"{'label' if kind == 'multilabel' else 'class'}_{c}" for c in range(num_classes))
    splits = {s: Split(*given[s]) for s in SPLITS}
    return Data(**splits, num_classes=num_classes, class_names=names, kind=kind, name=name, ignore_label=ignore_label)


# The embedded datasets by their `--dataset` name, generated with their own defaults.
SYNTHETIC = {
    "synthetic_segmentation": segmentation,
    "synthetic_tokens": token_sequences,
    "synthetic_multilabel": multilabel_tags,
}
