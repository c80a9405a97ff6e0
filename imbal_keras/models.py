"""Models: the built-in MLP and CNN, a user's model function imported by path, and how either is compiled.

The output bias starts at the class prior training actually sees (`output_bias`). That fixes where predictions
start only on average over the hidden activations: with a random output kernel, each example's first logit is
the bias plus a random projection of its hidden activations, so predictions spread around the prior (and, the
sigmoid being curved, their mean moves away from it). `zero_output_kernel=True` starts the output kernel at
zero, so every example's first prediction is exactly the prior; the hidden layers then receive no gradient in
the first step (their gradient passes through the zero kernel) and start learning from the second.

A user's model function (`ModelConfig.model = "package.module:function"`) is described in docs/models.md: its
arguments (`MODEL_FUNCTION_ARGUMENTS`), how the output bias is found and set, and how it is compiled.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from imbal_keras.data import sources, splits, tabular
from imbal_keras.errors import UserInputError, check

__all__ = [
    "MIN_IMAGE_SIDE",
    "MODEL_FUNCTION_ARGUMENTS",
    "build",
    "build_for_run",
    "compile_for_run",
    "initial_output_values",
    "initial_weights_key",
    "mlp_weights",
    "multilabel_mlp",
    "optimizer",
    "output_bias",
    "output_bias_index",
    "sequence_tagger",
    "unet",
]

# The keyword arguments a model function may take; it is called with those of them its signature names (all of
# them if it takes **kwargs).
MODEL_FUNCTION_ARGUMENTS = (
    "input_shape",
    "num_classes",
    "training_distribution",
    "seed",
    "features",
    "hidden_units",
    "class_names",
)
# Smallest image side the built-in CNN takes: one 3x3 convolution without padding.
MIN_IMAGE_SIDE = 3
_CONV_FILTERS = (16, 32)
_PROBE_EXAMPLES = 64


def output_bias(training_distribution: Sequence[float]) -> np.ndarray:
    """Initial output bias for a class distribution pi.

    Binary (sigmoid, one unit): log(pi_1 / pi_0), the log-odds, shape (1,). K classes (softmax): log(pi_c),
    shape (K,), defined up to a constant. Zero shares are clipped to 1e-7 so the bias stays finite.
    """
    pi = np.clip(np.asarray(training_distribution, dtype=np.float64), 1e-7, None)
    pi = pi / pi.sum()
    if len(pi) == 2:
        return np.array([np.log(pi[1] / pi[0])])
    return np.log(pi)


def build(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    kind: str = "tabular",
    hidden_units: Sequence[int] = (64, 64),
    training_distribution: Sequence[float] | None = None,
    output_bias: Sequence[float] | None = None,
    zero_output_kernel: bool = False,
    features: Sequence[tabular.Feature] = (),
    seed: int = 0,
) -> keras.Model:
    """An MLP (tabular) or a small CNN (image) classifier.

    The CNN has up to two blocks of a 3x3 convolution (16, then 32 filters, no padding) and a 2x2 max pooling;
    it stops adding blocks when the image is too small for another convolution and skips a pooling that would
    leave less than one pixel, so it takes any image of at least `MIN_IMAGE_SIDE` x `MIN_IMAGE_SIDE` pixels
    (28x28: 26, 13, 11, 5; 8x8: 6, 3, 1; 3x3: one convolution to 1x1). A global average pooling feeds the head.

    Args:
      input_shape: shape of one example: (D,) for tabular data, (H, W, C) for images (an MLP flattens them).
      num_classes: K; K = 2 gives one sigmoid output, K > 2 a softmax over K.
      kind: `tabular` (an MLP) or `image` (a CNN).
      hidden_units: MLP widths (tabular) or the dense head after the convolutions (image).
      training_distribution: class distribution the output bias starts at; None means uniform.
      output_bias: the output bias itself, shape (1,) for K = 2 or (K,); overrides `training_distribution`.
      zero_output_kernel: start the output kernel at zero (see the module docstring).
      features: what each input column holds (`Data.features`); categorical columns are one-hot encoded inside
        the model, the others used as they are.
      seed: seeds the weight initialisers.

    Returns:
      An uncompiled `keras.Model` that outputs probabilities.

    Raises:
      ValueError: an unknown kind.
      UserInputError: an image smaller than the CNN takes, or an `output_bias` of the wrong shape.
    """
    if kind not in ("tabular", "image"):
        raise ValueError(f"kind must be 'tabular' or 'image'. Received: kind={kind!r}")
    init = _initializers(seed)
    inputs = keras.Input(shape=tuple(input_shape))
    if kind == "image":
        h = _convolutions(inputs, tuple(input_shape), init)
    elif len(input_shape) > 1:
        h = keras.layers.Flatten()(inputs)
    else:
        h = _one_hot_categories(inputs, features)
    for width in hidden_units:
        h = keras.layers.Dense(width, activation="relu", kernel_initializer=init())(h)
    bias = _bias_values(num_classes, training_distribution, output_bias)
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    outputs = keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer="zeros" if zero_output_kernel else init(),
        bias_initializer=keras.initializers.Constant(bias),
        name="output",
    )(h)
    return keras.Model(inputs, outputs, name=f"{kind}_classifier")


def _initializers(seed: int) -> Callable[[], keras.initializers.Initializer]:
    """The kernel initialisers of a built-in model seeded by `seed`, one per call, in layer order."""
    seeds = iter(range(seed * 1000, seed * 1000 + 1000))
    return lambda: keras.initializers.GlorotUniform(seed=next(seeds))


def mlp_weights(
    input_dim: int,
    num_classes: int,
    *,
    hidden_units: Sequence[int] = (64, 64),
    training_distribution: Sequence[float] | None = None,
    output_bias: Sequence[float] | None = None,
    zero_output_kernel: bool = False,
    seed: int = 0,
) -> list[np.ndarray]:
    """The initial weights (`get_weights()` order) of the MLP `build` makes for numeric inputs (D,), drawn from
    its initialisers without building a model: seeds side by side start many replicas, and a Keras build costs
    more than a short run's training. Same arguments as `build`."""
    init = _initializers(seed)
    weights, fan_in = [], input_dim
    for width in hidden_units:
        weights += [np.asarray(init()((fan_in, width)), np.float32), np.zeros(width, np.float32)]
        fan_in = width
    bias = _bias_values(num_classes, training_distribution, output_bias)
    units = 1 if num_classes == 2 else num_classes
    kernel = np.zeros((fan_in, units), np.float32) if zero_output_kernel else np.asarray(init()((fan_in, units)))
    return [*weights, kernel.astype(np.float32), bias.astype(np.float32)]


def _bias_values(num_classes: int, training_distribution, bias) -> np.ndarray:
    if bias is None:
        prior = np.full(num_classes, 1.0 / num_classes) if training_distribution is None else training_distribution
        return output_bias(prior)
    bias = np.asarray(bias, dtype=np.float64).reshape(-1)
    expected = 1 if num_classes == 2 else num_classes
    check(
        len(bias) == expected and np.isfinite(bias).all(),
        f"output_bias must hold {expected} finite values for {num_classes} classes. Received: output_bias="
        f"{bias.tolist()}",
        argument="output_bias",
    )
    return bias


def _convolutions(inputs, input_shape: tuple[int, ...], init: Callable):
    check(
        len(input_shape) == 3 and min(input_shape[:2]) >= MIN_IMAGE_SIDE,
        f"model=cnn takes images (H, W, C) of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels. Received: "
        f"input_shape={input_shape}",
        argument="model",
    )
    h, size = inputs, np.array(input_shape[:2])
    for filters in _CONV_FILTERS:
        if size.min() < MIN_IMAGE_SIDE:
            break
        h = keras.layers.Conv2D(filters, 3, activation="relu", kernel_initializer=init())(h)
        size = size - 2
        if size.min() >= 2:
            h = keras.layers.MaxPooling2D()(h)
            size = size // 2
    return keras.layers.GlobalAveragePooling2D()(h)


def _one_hot_categories(inputs, features: Sequence[tabular.Feature]):
    """The input with each categorical column (an integer code) replaced by its one-hot encoding."""
    categorical = [i for i, f in enumerate(features) if f.kind == "categorical"]
    if not categorical:
        return inputs
    others = [i for i in range(len(features)) if i not in categorical]
    parts = [keras.ops.take(inputs, others, axis=1)] if others else []
    for i in categorical:
        code = keras.ops.cast(inputs[:, i], "int32")
        parts.append(keras.ops.one_hot(code, features[i].cardinality))
    return keras.layers.Concatenate()(parts) if len(parts) > 1 else parts[0]


def build_for_run(
    model: str,
    data: splits.Data,
    *,
    hidden_units: Sequence[int] = (64, 64),
    training_distribution: Sequence[float],
    output_bias: Sequence[float] | None = None,
    zero_output_kernel: bool = False,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> keras.Model:
    """The model of a run: a built-in one, or the one a user's function returns, checked and initialised.

    Args:
      model: `auto` (an MLP for tabular data, a CNN for images), `mlp`, `cnn` or `package.module:function`.
      data: the run's data (input shape, K, class names, what each column holds).
      hidden_units: the built-in models' widths; passed to a model function that takes `hidden_units`.
      training_distribution: the class distribution the model trains on, shape (K,).
      output_bias: the output bias to start at; None means `output_bias(training_distribution)`.
      zero_output_kernel: start the output kernel at zero.
      seed: seeds the weights (passed to a model function as `seed`).
      log: where the line saying how the output layer was initialised goes.

    Returns:
      An uncompiled built-in model, or the function's model (compiled if the function compiled it).

    Raises:
      UserInputError: a path that does not import, a function that fails or does not return a Keras model, an
        output that is not (batch, 1) for K = 2 or (batch, K), outputs that are not probabilities, or
        `zero_output_kernel` with no output layer to apply it to.
    """
    input_shape = data.train.x.shape[1:]
    if model in ("auto", "mlp", "cnn"):
        kind = {"auto": data.kind, "mlp": "tabular", "cnn": "image"}[model]
        return build(
            input_shape,
            data.num_classes,
            kind=kind,
            hidden_units=hidden_units,
            training_distribution=training_distribution,
            output_bias=output_bias,
            zero_output_kernel=zero_output_kernel,
            features=data.features,
            seed=seed,
        )
    function = sources.import_function(model, argument="model")
    built = _call_model_function(function, model, _function_arguments(data, hidden_units, training_distribution, seed))
    _check_outputs(built, model, data)
    bias = _bias_values(data.num_classes, training_distribution, output_bias)
    layer = _output_dense(built, len(bias))
    if layer is None:
        check(
            not zero_output_kernel,
            f"zero_output_kernel=True needs a Dense output layer with a bias ({_describe_output(built)}). "
            f"Received: model={model!r}",
            argument="zero_output_kernel",
        )
        log(f"model={model}: output bias not set: {_describe_output(built)}; the first prediction is the model's own")
        return built
    layer.bias.assign(bias.astype(np.float32))
    if zero_output_kernel:
        layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    log(
        f"model={model}: output bias of layer {layer.name!r} set to {np.array2string(bias, precision=4)}"
        + (" and its kernel to zero" if zero_output_kernel else "")
    )
    return built


def _function_arguments(data: splits.Data, hidden_units, training_distribution, seed: int) -> dict[str, Any]:
    """Every argument a model function may take (`MODEL_FUNCTION_ARGUMENTS`) for a run."""
    return {
        "input_shape": tuple(data.train.x.shape[1:]),
        "num_classes": data.num_classes,
        "training_distribution": np.asarray(training_distribution, dtype=np.float64),
        "seed": seed,
        "features": data.features,
        "hidden_units": tuple(hidden_units),
        "class_names": data.class_names,
    }


def initial_weights_key(
    model: str,
    data: splits.Data,
    *,
    hidden_units: Sequence[int],
    training_distribution: Sequence[float],
    zero_output_kernel: bool,
    seed: int,
) -> str:
    """What `build_for_run`'s weights depend on, but the output bias it sets (`output_bias_index`): equal keys give
    equal weights but that bias. For a built-in model, its kind, shapes, widths and seed (the output bias is a
    constant initialiser, which draws nothing); for a model function, every argument it is called with (its
    training distribution too if it takes one: it may use it anywhere) and the global seed set before it."""
    if model in ("auto", "mlp", "cnn"):
        arguments = {
            "kind": {"auto": data.kind, "mlp": "tabular", "cnn": "image"}[model],
            "input_shape": tuple(data.train.x.shape[1:]),
            "num_classes": data.num_classes,
            "hidden_units": tuple(hidden_units),
            "features": data.features,
            "seed": seed,
        }
    else:
        function = sources.import_function(model, argument="model")
        given = _given_arguments(function, model, _function_arguments(data, hidden_units, training_distribution, seed))
        arguments = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in given.items()}
        arguments["global seed"] = seed
    return repr((model, zero_output_kernel, sorted(arguments.items())))


def output_bias_index(built: keras.Model, num_classes: int) -> int | None:
    """The place among `built.trainable_variables` of the output bias `build_for_run` sets, or None (it sets none)."""
    layer = _output_dense(built, 1 if num_classes == 2 else num_classes)
    if layer is None:
        return None
    return next((i for i, v in enumerate(built.trainable_variables) if v is layer.bias), None)


def initial_output_values(
    num_classes: int, training_distribution: Sequence[float], output_bias_values: Sequence[float] | None
) -> np.ndarray:
    """The output bias `build_for_run` sets: `output_bias_values`, or the log-odds of `training_distribution`."""
    return _bias_values(num_classes, training_distribution, output_bias_values)


def _call_model_function(function: Callable, model: str, arguments: dict[str, Any]) -> keras.Model:
    given = _given_arguments(function, model, arguments)
    try:
        built = function(**given)
    except UserInputError:
        raise
    except Exception as e:  # noqa: BLE001  (the user's code: one line)
        message = " ".join(str(e).split())[:300] or type(e).__name__
        raise UserInputError(f"model={model!r} raised {type(e).__name__}: {message}", argument="model") from None
    check(
        isinstance(built, keras.Model),
        f"model={model!r} returned {type(built).__name__}, not a keras.Model",
        argument="model",
    )
    return built


def _given_arguments(function: Callable, model: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments a model function is called with: those its signature names (all with **kwargs)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        given = dict(arguments)
    else:
        names = {p.name for p in parameters}
        given = {k: v for k, v in arguments.items() if k in names}
        unknown = [
            p.name
            for p in parameters
            if p.name not in arguments
            and p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        check(
            not unknown,
            f"model={model!r} requires argument(s) {unknown} that the toolkit does not pass; it passes "
            f"{', '.join(MODEL_FUNCTION_ARGUMENTS)}",
            argument="model",
        )
    return given


def _check_outputs(built: keras.Model, model: str, data: splits.Data) -> None:
    """Runs the model on a few training examples: one output of the right shape, holding probabilities."""
    probe = data.train.x[:_PROBE_EXAMPLES]
    try:
        outputs = built(probe, training=False)
    except Exception as e:  # noqa: BLE001  (the user's model: one line)
        message = " ".join(str(e).split())[:300]
        raise UserInputError(
            f"model={model!r} cannot take inputs of shape {tuple(data.train.x.shape[1:])}: {type(e).__name__}: "
            f"{message}",
            argument="model",
        ) from None
    check(
        not isinstance(outputs, (list, tuple, dict)),
        f"model={model!r} has {len(outputs)} outputs; it must have one",
        argument="model",
    )
    p = keras.ops.convert_to_numpy(outputs)
    k = data.num_classes
    expected = (len(probe), 1) if k == 2 else (len(probe), k)
    check(
        p.shape == expected,
        f"model={model!r} outputs shape (batch, {', '.join(map(str, p.shape[1:]))}); with {k} classes it must be "
        f"(batch, {expected[1]})" + (" (one sigmoid unit)" if k == 2 else " (a softmax over K)"),
        argument="model",
    )
    probabilities = np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1
    if k > 2:
        probabilities = probabilities and np.allclose(p.sum(axis=1), 1, atol=1e-3)
    check(
        bool(probabilities),
        f"model={model!r} does not output probabilities (outputs in [{np.nanmin(p):.3g}, {np.nanmax(p):.3g}]"
        + ("" if k == 2 else ", rows not summing to 1")
        + f"); end it with a {'sigmoid' if k == 2 else 'softmax'} activation",
        argument="model",
    )


def _output_dense(built: keras.Model, units: int) -> keras.layers.Dense | None:
    """The Dense layer whose bias is the output logits' bias, or None.

    Found by following the model's output back through its producing layer: a Dense layer with a bias and
    `units` units, either with a sigmoid / softmax activation or followed by an `Activation` (sigmoid or softmax)
    or `Softmax` layer.
    """
    layer = _producer(built)
    if isinstance(layer, (keras.layers.Activation, keras.layers.Softmax)):
        name = getattr(getattr(layer, "activation", None), "__name__", "softmax")
        if name not in ("sigmoid", "softmax"):
            return None
        layer = _producer(built, before=layer)
        activation_ok = getattr(getattr(layer, "activation", None), "__name__", "") == "linear"
    else:
        activation_ok = getattr(getattr(layer, "activation", None), "__name__", "") in ("sigmoid", "softmax")
    if isinstance(layer, keras.layers.Dense) and layer.use_bias and layer.units == units and activation_ok:
        return layer
    return None


def _producer(built: keras.Model, *, before=None):
    """The layer that produced the model's output, or (with `before`) the layer that produced `before`'s input.

    None for a subclassed model, whose layer graph Keras does not record.
    """
    if isinstance(built, keras.Sequential):
        layers = built.layers
        return layers[-1] if before is None else layers[layers.index(before) - 1]
    try:
        tensor = built.outputs[0] if before is None else before._inbound_nodes[0].input_tensors[0]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


def _describe_output(built: keras.Model) -> str:
    layer = _producer(built)
    name = f"{type(layer).__name__} {getattr(layer, 'name', '')!r}" if layer is not None else "an unknown layer"
    return f"the output comes from {name}, not a Dense layer with a bias and a sigmoid/softmax"


def compile_for_run(
    model: keras.Model,
    *,
    loss: keras.losses.Loss,
    optimizer: keras.optimizers.Optimizer,
    strategy,
    log: Callable[[str], None] = print,
    steps_per_execution: int = 1,
) -> None:
    """Compiles `model` with the strategy's loss, unless its function compiled it already.

    A model function that returns a compiled model keeps its own optimizer and loss: the run's `optimizer` and
    `learning_rate` do not apply, and a strategy's sample weights still reach the loss through Keras'
    `sample_weight` (reduced as that loss reduces them). A strategy that works through a loss of its own (focal,
    LDAM, ...) cannot act on a compiled model, so that combination is refused.

    Args:
      model: the run's model.
      loss: the strategy's loss (`strategies.build_loss`).
      optimizer: the run's optimizer.
      strategy: the run's `strategies.Strategy`.
      log: where the line about a model compiled by its function goes.
      steps_per_execution: optimizer steps per compiled call (Keras' `compile` argument).

    Raises:
      UserInputError: a compiled model with a strategy whose loss is its own.
    """
    if not model.compiled:
        model.compile(optimizer=optimizer, loss=loss, steps_per_execution=steps_per_execution)
        return
    check(
        strategy.loss is None,
        f"strategy={strategy.name!r} works through a loss of its own, which a model compiled by its function "
        "cannot take; return the model uncompiled",
        argument="strategy",
    )
    log(
        f"model compiled by its function: its optimizer and loss are kept (optimizer and learning_rate do not "
        f"apply); {strategy.name}'s sample weights, if any, reach that loss"
    )


def optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """`sgd` (plain, no momentum, so steps are comparable across strategies) or `adam`."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"optimizer must be 'sgd' or 'adam'. Received: optimizer={name!r}")


def unet(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    filters: Sequence[int] = (8, 16),
    class_shares: Sequence[float] | None = None,
    seed: int = 0,
) -> keras.Model:
    """A tiny U-Net (Ronneberger et al. 2015) for segmentation: (H, W, C) images to (H, W, K) softmax maps.

    Each level has two 3x3 convolutions ("same" padding, ReLU); the encoder halves the resolution between levels
    (2x2 max pooling), the decoder doubles it (2x2 transposed convolution) and concatenates the encoder's features
    of that level; a 1x1 convolution gives the class probabilities.
    `filters=(8, 16)` with one input channel and 3 classes has 6,443 weights.

    Args:
      input_shape: (H, W, C), H and W divisible by 2^(levels - 1).
      num_classes: K >= 2 (a softmax over K for every pixel, also for K = 2).
      filters: filters per level, from the top.
      class_shares: pixel share of each class the output bias starts at (log share); None: uniform.
      seed: seeds the weight initialisers.

    Raises:
      UserInputError: an input shape that is not (H, W, C) divisible by 2^(levels - 1).
    """
    step = 2 ** (len(filters) - 1)
    check(
        len(input_shape) == 3 and input_shape[0] % step == 0 and input_shape[1] % step == 0,
        f"input_shape must be (H, W, C) with H and W divisible by {step}. Received: input_shape={tuple(input_shape)}",
        argument="input_shape",
    )
    init = _initializers(seed)
    inputs = keras.Input(shape=tuple(input_shape))
    h, skips = inputs, []
    for level, width in enumerate(filters):
        if level:
            h = keras.layers.MaxPooling2D()(h)
        h = _double_convolution(h, width, init)
        skips.append(h)
    for width, skip in zip(reversed(filters[:-1]), reversed(skips[:-1]), strict=True):
        h = keras.layers.Conv2DTranspose(width, 2, strides=2, kernel_initializer=init())(h)
        h = _double_convolution(keras.layers.Concatenate()([h, skip]), width, init)
    outputs = keras.layers.Conv2D(
        num_classes, 1, activation="softmax", **_dense_output(num_classes, class_shares, init)
    )(h)
    return keras.Model(inputs, outputs, name="unet")


def sequence_tagger(
    vocabulary: int,
    num_classes: int,
    *,
    embedding_dim: int = 16,
    filters: int = 32,
    class_shares: Sequence[float] | None = None,
    seed: int = 0,
) -> keras.Model:
    """A small 1-D convolutional tagger: (T,) token ids to (T, K) softmax tags.

    An embedding, two 3-wide 1-D convolutions ("same" padding, ReLU; each token sees two neighbours on each side)
    and a per-token dense softmax.

    Args:
      vocabulary: token ids 0..V-1.
      num_classes: K >= 2.
      embedding_dim: embedding width.
      filters: convolution filters.
      class_shares: token share of each tag the output bias starts at; None: uniform.
      seed: seeds the weight initialisers.
    """
    init = _initializers(seed)
    inputs = keras.Input(shape=(None,), dtype="int32")
    h = keras.layers.Embedding(
        vocabulary, embedding_dim, embeddings_initializer=keras.initializers.RandomUniform(seed=seed)
    )(inputs)
    for _ in range(2):
        h = keras.layers.Conv1D(filters, 3, padding="same", activation="relu", kernel_initializer=init())(h)
    outputs = keras.layers.Dense(num_classes, activation="softmax", **_dense_output(num_classes, class_shares, init))(h)
    return keras.Model(inputs, outputs, name="sequence_tagger")


def multilabel_mlp(
    input_dim: int,
    num_labels: int,
    *,
    hidden_units: Sequence[int] = (64,),
    label_shares: Sequence[float] | None = None,
    seed: int = 0,
) -> keras.Model:
    """An MLP with one sigmoid per label: (D,) features to (L,) probabilities.

    Args:
      input_dim: D.
      num_labels: L.
      hidden_units: hidden widths (ReLU).
      label_shares: positive share of each label; the output bias starts at its log-odds. None: 0 (p = 0.5).
      seed: seeds the weight initialisers.
    """
    init = _initializers(seed)
    inputs = keras.Input(shape=(input_dim,))
    h = inputs
    for width in hidden_units:
        h = keras.layers.Dense(width, activation="relu", kernel_initializer=init())(h)
    bias = np.zeros(num_labels)
    if label_shares is not None:
        p = np.clip(np.asarray(label_shares, np.float64), 1e-7, 1 - 1e-7)
        bias = np.log(p / (1 - p))
    outputs = keras.layers.Dense(
        num_labels, activation="sigmoid", kernel_initializer=init(), bias_initializer=keras.initializers.Constant(bias)
    )(h)
    return keras.Model(inputs, outputs, name="multilabel_mlp")


def _double_convolution(h, width: int, init: Callable):
    for _ in range(2):
        h = keras.layers.Conv2D(width, 3, padding="same", activation="relu", kernel_initializer=init())(h)
    return h


def _dense_output(num_classes: int, class_shares, init: Callable) -> dict[str, Any]:
    """Initialisers of a per-pixel softmax output whose bias starts at log(share) (uniform without shares)."""
    shares = np.full(num_classes, 1.0 / num_classes) if class_shares is None else np.asarray(class_shares, np.float64)
    check(
        shares.shape == (num_classes,) and (shares >= 0).all() and shares.sum() > 0,
        f"class_shares must be {num_classes} non-negative shares. "
        f"Received: class_shares={np.atleast_1d(shares).tolist()}",
        argument="class_shares",
    )
    bias = np.log(np.clip(shares / shares.sum(), 1e-7, None))
    return {"kernel_initializer": init(), "bias_initializer": keras.initializers.Constant(bias)}
