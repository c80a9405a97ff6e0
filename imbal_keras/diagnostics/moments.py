"""Per-class moments of the per-example gradient at the model's current weights: what the exact mode needs.

Per-example gradients g_i of the model's per-example loss, vectorised and chunked (in closed form for a chain of
Dense layers), reduced to per-class moments (`ClassMoments`: mean mu_c, second moment s_c = E[|g|^2 | c], Gram
matrix mu_c . mu_d), from the whole data or from a seeded per-class subsample (`subsample`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from imbal_keras.diagnostics._common import CHUNK_BYTES, cached, check_int, check_single_output, resolve_loss
from imbal_keras.errors import check

__all__ = [
    "CLASS_QUANTITIES",
    "DEFAULT_EXAMPLES_PER_CLASS",
    "DEFAULT_MAX_PARAMETERS",
    "ClassMoments",
    "PerExampleGradients",
    "check_labels",
    "class_moments",
    "per_example_gradients",
    "subsample",
]

# Above this many trainable parameters the exact mode refuses: per-example gradients cost one backward pass per
# example each and memory proportional to examples x parameters per chunk.
DEFAULT_MAX_PARAMETERS = 1_000_000


_MAX_CHUNK = 512


_MAX_DENSE_CHUNK = 8192


CLASS_QUANTITIES = ("mean_norm", "second_moment", "within_variance")


# Examples per class in the callback's subsample (classes with fewer are taken whole).
DEFAULT_EXAMPLES_PER_CLASS = 1024


@dataclasses.dataclass(frozen=True)
class ClassMoments:
    """Per-class moments of the per-example gradient g_i = d l_i / d theta at one set of weights.

    Attributes:
      class_counts: n_c, examples of class c in the data the strategies draw from, (K,).
      examples: m_c, examples of class c the moments were computed from, (K,): m_c = n_c is the whole class,
        m_c < n_c a uniform subsample without replacement.
      means: mu_c, the mean gradient of class c, (K, P).
      second_moments: s_c = E[|g|^2 | class c], (K,).
      gram: mu_c . mu_d, (K, K). For a subsampled class its diagonal is the unbiased estimate
        |mean|^2 - (1 - m_c / n_c) S_c^2 / m_c (S_c^2: the sample variance), since |mean|^2 alone overstates
        |mu_c|^2 by the variance of the mean.
    """

    class_counts: np.ndarray
    examples: np.ndarray
    means: np.ndarray
    second_moments: np.ndarray
    gram: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    @property
    def within_variance(self) -> np.ndarray:
        """v_c = s_c - |mu_c|^2 = E[|g - mu_c|^2 | class c], (K,)."""
        return self.second_moments - np.diag(self.gram)

    @property
    def balanced_gradient(self) -> np.ndarray:
        """The gradient of the balanced risk (1/K) sum_c E[l | c]: the mean of mu_c over the classes, (P,)."""
        return self.means.mean(axis=0)

    def as_row(self) -> dict[str, float]:
        """Per-class scalars: `mean_norm_class_c` (|mu_c|), `second_moment_class_c`, `within_variance_class_c`."""
        row = {}
        values = {
            "mean_norm": np.sqrt(np.maximum(np.diag(self.gram), 0)),
            "second_moment": self.second_moments,
            "within_variance": self.within_variance,
        }
        for c in range(self.num_classes):
            for name in CLASS_QUANTITIES:
                row[f"{name}_class_{c}"] = float(values[name][c])
        return row

    @classmethod
    def from_gradients(
        cls,
        gradients: np.ndarray,
        labels: np.ndarray,
        *,
        num_classes: int,
        class_counts: Sequence[int] | None = None,
    ) -> ClassMoments:
        """Moments from per-example gradients computed elsewhere.

        Args:
          gradients: g_i, (N, P).
          labels: class ids, (N,).
          num_classes: K.
          class_counts: n_c of the data the strategies draw from, when `labels` is a per-class subsample of it;
            None means `gradients` covers the whole data.

        Returns:
          The `ClassMoments`.
        """
        gradients = np.asarray(gradients, dtype=np.float64)
        one_hot = _one_hot(labels, num_classes)
        return _moments_from_sums(
            one_hot.T @ gradients, one_hot.T @ np.einsum("ij,ij->i", gradients, gradients), one_hot.sum(0), class_counts
        )


def _moments_from_sums(sums, squares, examples, class_counts) -> ClassMoments:
    """`ClassMoments` from per-class sums of g (K, P), of |g|^2 (K,) and example counts m_c (K,)."""
    examples = np.asarray(examples, dtype=np.int64)
    counts = examples if class_counts is None else np.asarray(class_counts, dtype=np.int64)
    check(
        counts.shape == examples.shape,
        f"class_counts must have one entry per class ({len(examples)}). Received: class_counts={counts.tolist()}",
        argument="class_counts",
    )
    missing = np.flatnonzero(examples == 0)
    check(
        not len(missing),
        f"labels must hold every class; class {missing[0] if len(missing) else ''} has no example. "
        f"Received: examples per class {examples.tolist()}",
        argument="labels",
    )
    check(
        ((examples <= counts) & ((examples == counts) | (examples >= 2))).all(),
        f"class_counts must be at least the examples given per class, and a subsampled class needs 2 examples. "
        f"Received: class_counts={counts.tolist()}, examples per class {examples.tolist()}",
        argument="class_counts",
    )
    m = examples.astype(np.float64)
    means = sums / m[:, None]
    second = squares / m
    gram = means @ means.T
    # Unbiased |mu_c|^2 under a subsample without replacement: E|mean|^2 = |mu|^2 + (1 - m/n) S^2 / m.
    sample_variance = np.where(m > 1, (second - np.diag(gram)) * m / np.maximum(m - 1, 1), 0.0)
    gram[np.diag_indices_from(gram)] -= (1 - m / counts) * sample_variance / m
    return ClassMoments(counts, examples, means, second, gram)


def class_moments(
    model: keras.Model,
    features,
    labels,
    *,
    num_classes: int | None = None,
    class_counts: Sequence[int] | None = None,
    loss=None,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
) -> ClassMoments:
    """Per-class moments of the per-example gradients at the model's current weights (the exact mode).

    Per-example gradients come in closed form for a chain of Dense layers (one batched backward pass, chunks of up
    to 8192 examples) and from `tf.vectorized_map` over one example's GradientTape for any other model (chunks of
    at most 512 examples and 64 MiB); per-class sums accumulate in float64 and the (N, P) matrix is never held.

    Args:
      model: a single-output Keras model.
      features: array (or nested structure of arrays) with leading dimension N.
      labels: integer class ids, (N,).
      num_classes: K; None means max(labels) + 1.
      class_counts: n_c of the data the strategies draw from, when `features` is a per-class subsample of it
        (see `subsample`); None means the whole data.
      loss: a per-example Keras loss (object, name or function); None means the model's compiled loss.
      max_parameters: refuse models with more trainable parameters than this.

    Returns:
      The `ClassMoments`.

    Raises:
      UserInputError: a loss that is not per-example, a model over `max_parameters`, labels missing a class.
    """
    labels = check_labels(labels)
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    sums, squares = PerExampleGradients.of(model, loss, max_parameters=max_parameters).class_sums(features, labels, k)
    return _moments_from_sums(sums, squares, np.bincount(labels, minlength=k)[:k], class_counts)


def per_example_gradients(model: keras.Model, features, labels, *, loss=None) -> np.ndarray:
    """The per-example gradients g_i = d l_i / d theta over the trainable weights, flattened, (N, P) float32.

    Args:
      model: a single-output Keras model.
      features: array (or nested structure of arrays) with leading dimension N.
      labels: integer class ids, (N,).
      loss: a per-example Keras loss; None means the model's compiled loss.

    Returns:
      (N, P) array, weights in `model.trainable_weights` order.
    """
    return PerExampleGradients.of(model, loss, max_parameters=DEFAULT_MAX_PARAMETERS).matrix(
        features, check_labels(labels)
    )


class PerExampleGradients:
    """Per-example gradients of one model and loss in chunks, by one traced function.

    A model that is a plain chain of `Dense` layers (the default MLP, logistic regression) gets them in closed form
    from one batched backward pass: with a the input and delta = dl_i/dz the pre-activation gradient of a layer, the
    example's kernel gradient is the outer product a_i delta_i and its bias gradient delta_i (Goodfellow 2015,
    "Efficient per-example gradient computations"). The traced graph returns a and delta and the per-class sums are
    formed from them by a few eager ops, which keeps the graph small (tracing is most of a diagnosis's cost). Any other
    model goes through `tf.vectorized_map` over one example's GradientTape; both give the same numbers, but tracing
    the vectorised one takes seconds.
    """

    def __init__(self, model: keras.Model, loss: keras.losses.Loss, max_chunk: int):
        self._model = model
        self._loss = loss
        self._dense = _dense_chain(model)
        self.max_chunk = max_chunk if self._dense is None else _MAX_DENSE_CHUNK
        self._checked = False
        # Chunks of one size trace once; a second size traces a shape-generic function. The code is plain tensor
        # code: without AutoGraph's source conversion tracing takes a fraction of the time.
        program = self._vectorised if self._dense is None else self._dense_pieces
        self._program = tf.function(program, reduce_retracing=True, autograph=False)

    @classmethod
    def of(cls, model: keras.Model, loss, *, max_parameters: int) -> PerExampleGradients:
        """The per-example gradient program of `model`, reused while the model and loss stay the same."""
        check_single_output(model)
        size = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        check(
            size <= max_parameters,
            f"model has {size:,} trainable parameters, more than the exact mode takes (max_parameters="
            f"{max_parameters:,}); use the sampled mode (diagnostics.sampled or two_batch_sizes) for it. "
            f"Received: a model with {size} parameters",
            argument="model",
        )
        chunk = max(1, min(_MAX_CHUNK, CHUNK_BYTES // (4 * max(size, 1))))
        return cached(model, loss, cls, lambda: cls(model, resolve_loss(model, loss), chunk))

    @property
    def closed_form(self) -> bool:
        """Whether the Dense-chain closed form is used (else `tf.vectorized_map`)."""
        return self._dense is not None

    def _vectorised(self, x, y) -> tf.Tensor:
        """g_i of every example of the chunk, (C, P)."""
        weights = self._model.trainable_weights

        def one(example):
            xi, yi = example
            with tf.GradientTape() as tape:
                y_pred = self._model(tf.nest.map_structure(lambda t: t[None], xi), training=False)
                value = tf.reduce_sum(self._loss.call(tf.cast(yi[None], self._loss.dtype), y_pred))
            grads = tape.gradient(value, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return tf.concat([tf.reshape(tf.cast(g, tf.float32), [-1]) for g in grads], 0)

        return tf.vectorized_map(one, (x, y))

    def _dense_pieces(self, x, y):
        """Per Dense layer: its input a (C, in) and dl_i/dz (C, out), from one backward pass of sum_i l_i."""
        with tf.GradientTape() as tape:
            out, inputs, outputs = _dense_forward(self._dense, x)
            total = tf.reduce_sum(self._loss.call(tf.cast(y, self._loss.dtype), out))
        # z_i feeds l_i only, so d(sum_j l_j)/dz_i = dl_i/dz_i row by row.
        deltas = tape.gradient(total, outputs)
        return [(tf.cast(a, tf.float32), tf.cast(d, tf.float32)) for a, d in zip(inputs, deltas, strict=True)]

    def _sums(self, x, y, one_hot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-class sums of g_i (K, P) and of |g_i|^2 (K,) of a chunk; rows with a zero one-hot row count 0."""
        h = tf.constant(one_hot, tf.float32)
        if self._dense is None:
            g = self._program(x, tf.constant(y))
            sums, squares = (
                tf.matmul(h, g, transpose_a=True),
                tf.linalg.matvec(h, tf.reduce_sum(g * g, 1), transpose_a=True),
            )
            return sums.numpy().astype(np.float64), squares.numpy().astype(np.float64)
        # A dozen large eager ops: cheaper than tracing them into the program.
        trainable = {id(w) for w in self._model.trainable_weights}
        parts, squares = {}, tf.zeros(len(one_hot))
        for layer, (a, delta) in zip(self._dense, self._program(x, tf.constant(y)), strict=True):
            delta_sq = tf.reduce_sum(delta * delta, 1)
            if id(layer.kernel) in trainable:
                # sum over class-k rows of a_i delta_i^T for every class k in one product: (K * in, out).
                by_class = tf.reshape(h[:, :, None] * a[:, None, :], [len(one_hot), -1])
                parts[id(layer.kernel)] = tf.reshape(
                    tf.matmul(by_class, delta, transpose_a=True), [one_hot.shape[1], -1]
                )
                squares += tf.reduce_sum(a * a, 1) * delta_sq  # |a_i delta_i^T|^2 = |a_i|^2 |delta_i|^2
            if layer.use_bias and id(layer.bias) in trainable:
                parts[id(layer.bias)] = tf.matmul(h, delta, transpose_a=True)
                squares += delta_sq
        flat = tf.concat([parts[id(w)] for w in self._model.trainable_weights], 1)
        return flat.numpy().astype(np.float64), tf.linalg.matvec(h, squares, transpose_a=True).numpy().astype(
            np.float64
        )

    def _gradients(self, x, y) -> np.ndarray:
        """g_i of every example of the chunk, (C, P) float32."""
        if self._dense is None:
            return self._program(x, tf.constant(y)).numpy()
        parts = {}
        for layer, (a, delta) in zip(self._dense, self._program(x, tf.constant(y)), strict=True):
            parts[id(layer.kernel)] = tf.reshape(a[:, :, None] * delta[:, None, :], [a.shape[0], -1])
            if layer.use_bias:
                parts[id(layer.bias)] = delta
        return tf.concat([parts[id(w)] for w in self._model.trainable_weights], 1).numpy()

    def _check_per_example(self, features, labels) -> None:
        if self._checked:
            return
        n = min(2, len(labels))
        x = tf.nest.map_structure(lambda f: tf.constant(np.asarray(f)[:n]), features)
        values = self._loss.call(tf.cast(tf.constant(labels[:n]), self._loss.dtype), self._model(x, training=False))
        check(
            tuple(values.shape) == (n,),
            f"loss must return one value per example for the gradient-noise diagnostics. "
            f"Received: loss={getattr(self._loss, 'name', self._loss)!r} returning shape {tuple(values.shape)} "
            f"for {n} examples",
            argument="loss",
        )
        self._checked = True

    def _chunks(self, features, labels, max_chunk: int):
        """(x, y, valid) per chunk of equal size, the last one padded with copies of the first example."""
        self._check_per_example(features, labels)
        n = len(labels)
        chunk = -(-n // -(-n // max_chunk))  # as few chunks as the limit allows, as even as possible
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            pad = chunk - (stop - start)
            x = tf.nest.map_structure(lambda f, a=start, b=stop, p=pad: _padded(np.asarray(f)[a:b], p), features)
            yield x, _padded(labels[start:stop], pad), stop - start

    def class_sums(self, features, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        size = sum(int(np.prod(w.shape)) for w in self._model.trainable_weights)
        sums, squares = np.zeros((num_classes, size)), np.zeros(num_classes)
        for x, y, valid in self._chunks(features, labels, self.max_chunk):
            one_hot = _one_hot(y, num_classes)
            one_hot[valid:] = 0
            s, q = self._sums(x, y, one_hot)
            sums += s
            squares += q
        return sums, squares

    def matrix(self, features, labels) -> np.ndarray:
        # Chunks of the (N, P) matrix itself, so bounded by bytes whichever way the gradients are computed.
        size = sum(int(np.prod(w.shape)) for w in self._model.trainable_weights)
        chunk = max(1, min(self.max_chunk, CHUNK_BYTES // (4 * max(size, 1))))
        parts = [self._gradients(x, y)[:valid] for x, y, valid in self._chunks(features, labels, chunk)]
        return np.concatenate(parts)


def _dense_chain(model: keras.Model) -> list | None:
    """The model's Dense layers in order when it is exactly a chain of plain Dense layers on one input, else None.

    Checked by structure (every layer a plain `Dense`, every trainable weight one of theirs) and by value (the chain
    recomputed by hand gives the model's output on a probe), so skip connections or custom calls fall back.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    inputs = model.inputs or []
    if (
        not layers
        or len(inputs) != 1
        or None in tuple(inputs[0].shape)[1:]
        or any(
            type(layer) is not keras.layers.Dense
            or getattr(layer, "lora_enabled", False)
            or getattr(layer, "quantization_mode", None)
            for layer in layers
        )
    ):
        return None
    owned = {id(w) for layer in layers for w in layer.weights}
    if any(id(w) not in owned for w in model.trainable_weights):
        return None
    probe = np.random.default_rng(0).normal(size=(2, *tuple(inputs[0].shape)[1:])).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(probe, training=False))
    try:
        by_hand = _dense_forward(layers, tf.constant(probe))[0].numpy()
    except (ValueError, tf.errors.InvalidArgumentError):  # the layers do not even compose in this order
        return None
    return layers if by_hand.shape == expected.shape and np.allclose(by_hand, expected, rtol=1e-5, atol=1e-6) else None


def _dense_forward(layers, x):
    """The chain's output, and each layer's input a and pre-activation output z = a W + b."""
    a, inputs, outputs = x, [], []
    for layer in layers:
        a = tf.cast(a, layer.compute_dtype)
        z = tf.matmul(a, layer.kernel)
        if layer.use_bias:
            z = z + layer.bias
        inputs.append(a)
        outputs.append(z)
        a = layer.activation(z)
    return a, inputs, outputs


def _padded(a: np.ndarray, pad: int) -> np.ndarray:
    return a if pad == 0 else np.concatenate([a, np.repeat(a[:1], pad, axis=0)])


def subsample(labels, *, examples_per_class: int = DEFAULT_EXAMPLES_PER_CLASS, seed: int = 0) -> np.ndarray:
    """Indices of a per-class subsample: up to `examples_per_class` of each class, without replacement, sorted.

    Classes with fewer examples are taken whole, so a rare class keeps all of its examples. Same seed, same
    indices.
    """
    labels = check_labels(labels)
    check_int(examples_per_class, "examples_per_class", minimum=2)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(int(labels.max()) + 1):
        index = np.flatnonzero(labels == c)
        chosen.append(
            index if len(index) <= examples_per_class else rng.choice(index, examples_per_class, replace=False)
        )
    return np.sort(np.concatenate(chosen))


def check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    check(
        labels.ndim == 1 and len(labels) > 0 and np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0,
        f"labels must be a non-empty 1-D array of class ids >= 0. Received: labels of shape {labels.shape}, "
        f"dtype {labels.dtype}",
        argument="labels",
    )
    return labels.astype(np.int64)


def _one_hot(labels, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    check(
        labels.max() < num_classes,
        f"labels must be class ids below num_classes={num_classes}. Received: a label {labels.max()}",
        argument="labels",
    )
    return np.eye(num_classes)[labels]
