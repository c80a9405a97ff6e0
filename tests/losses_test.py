"""Losses of the long-tail literature: values and gradients against numpy formulas, weights, the DRW switch."""

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras import losses
from imbal_keras.callbacks import PerClassGradients
from imbal_keras.errors import UserInputError

# Binary: 6 logits of a sigmoid output and their labels; K = 3: 5 rows of softmax logits.
BINARY_LOGITS = np.array([2.0, -1.0, 0.3, np.log(9.0), np.log(9.0), -3.0])
BINARY_LABELS = np.array([1, 1, 0, 1, 0, 0])
MULTI_LOGITS = np.array([[1.0, 0.0, -1.0], [0.2, 0.5, 0.1], [-2.0, 1.0, 0.5], [0.0, 0.0, 3.0], [1.5, -0.5, 0.0]])
MULTI_LABELS = np.array([0, 2, 1, 2, 1])
RTOL = 1e-5


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _cross_entropy_by_hand(z, y):
    """Per-example -log softmax(z)_y and its gradient softmax(z) - e_y, (B,) and (B, K)."""
    p = _softmax(z)
    onehot = np.eye(z.shape[1])[y]
    return -np.log(p[np.arange(len(y)), y]), p - onehot


def _focal_by_hand(z, y, gamma, alpha):
    """FL = -a_y (1 - p_y)^g log p_y; dFL/dz_j = a_y (d_jy - p_j) [g (1 - p_y)^(g-1) p_y log p_y - (1 - p_y)^g]."""
    p = _softmax(z)
    py = p[np.arange(len(y)), y]
    a = np.ones(len(y)) if alpha is None else np.asarray(alpha)[y]
    value = -a * (1 - py) ** gamma * np.log(py)
    inner = gamma * (1 - py) ** (gamma - 1) * py * np.log(py) - (1 - py) ** gamma
    return value, (a * inner)[:, None] * (np.eye(z.shape[1])[y] - p)


def _two_class(z):
    """A sigmoid logit z is the two-class softmax logits [0, z]."""
    return np.stack([np.zeros_like(z), z], axis=1)


def _output(z, form):
    """The model output for logits z: logits, Keras' own sigmoid/softmax, or bare probabilities."""
    binary = z.ndim == 1
    z = z[:, None] if binary else z
    if form == "logits":
        return z
    if form == "keras":
        return keras.activations.sigmoid(z) if binary else keras.activations.softmax(z)
    return tf.nn.sigmoid(z) if binary else tf.nn.softmax(z)


def _values_and_gradients(loss, z, y, form):
    """Per-example losses and d loss_i / d z_i (each example depends on its own row only)."""
    z = tf.constant(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        values = loss(tf.constant(y), _output(z, form))
    return values.numpy(), tape.gradient(values, z).numpy()


FORMS = ["logits", "keras", "probabilities"]


def _make(cls, form, **kwargs):
    return cls(**kwargs, from_logits=form == "logits", reduction=None)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, None), (0.5, [0.75, 0.25]), (0.0, [1.0, 3.0])])
def test_binary_focal_values_and_gradients(form, gamma, alpha):
    values, gradients = _values_and_gradients(
        _make(losses.FocalLoss, form, gamma=gamma, alpha=alpha), BINARY_LOGITS, BINARY_LABELS, form
    )
    expected, expected_gradients = _focal_by_hand(_two_class(BINARY_LOGITS), BINARY_LABELS, gamma, alpha)
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(gradients.ravel(), expected_gradients[:, 1], rtol=1e-4, atol=1e-6)


def test_focal_by_hand_at_p_09():
    # p = 0.9: -(0.1)^2 ln 0.9 for the positive, -(0.9)^2 ln 0.1 for the negative.
    loss = losses.FocalLoss(gamma=2.0, from_logits=True, reduction=None)
    values = loss(np.array([1, 0]), np.log([[9.0], [9.0]])).numpy()
    np.testing.assert_allclose(values, [0.01 * 0.1053605, 0.81 * 2.3025851], rtol=RTOL)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, [1.0, 2.0, 4.0]), (1.0, None)])
def test_multiclass_focal_values_and_gradients(form, gamma, alpha):
    values, gradients = _values_and_gradients(
        _make(losses.FocalLoss, form, gamma=gamma, alpha=alpha), MULTI_LOGITS, MULTI_LABELS, form
    )
    expected, expected_gradients = _focal_by_hand(MULTI_LOGITS, MULTI_LABELS, gamma, alpha)
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(gradients, expected_gradients, rtol=1e-4, atol=1e-6)


def test_focal_alpha_is_applied_like_keras_with_class_balancing():
    y, p = BINARY_LABELS.astype(np.float32)[:, None], tf.nn.sigmoid(BINARY_LOGITS[:, None]).numpy()
    ours = losses.FocalLoss(gamma=2.0, alpha=[0.75, 0.25])(y, p)
    theirs = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0)(y, p)
    ignored = keras.losses.BinaryFocalCrossentropy(alpha=0.25, gamma=2.0)(y, p)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-4)
    assert abs(float(ignored) - float(ours)) > 0.1 * float(ours)  # Keras' alpha without balancing: ignored


@pytest.mark.parametrize("num_classes", [2, 3])
def test_focal_with_gamma_0_is_the_cross_entropy(num_classes):
    z, y = (BINARY_LOGITS[:, None], BINARY_LABELS) if num_classes == 2 else (MULTI_LOGITS, MULTI_LABELS)
    p = _output(z[:, 0] if num_classes == 2 else z, "keras")
    keras_loss = keras.losses.BinaryCrossentropy() if num_classes == 2 else keras.losses.SparseCategoricalCrossentropy()
    expected = keras_loss(y[:, None].astype(np.float32) if num_classes == 2 else y, p)
    np.testing.assert_allclose(float(losses.FocalLoss(gamma=0.0)(y, p)), float(expected), rtol=RTOL)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("tau", [1.0, 0.5, 0.0])
def test_logit_adjusted_values_and_gradients(form, tau):
    counts = np.array([60.0, 30.0, 10.0])
    loss = _make(losses.LogitAdjustedLoss, form, prior=counts, tau=tau)
    values, gradients = _values_and_gradients(loss, MULTI_LOGITS, MULTI_LABELS, form)
    expected, expected_gradients = _cross_entropy_by_hand(MULTI_LOGITS + tau * np.log(counts / 100), MULTI_LABELS)
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(gradients, expected_gradients, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("form", FORMS)
def test_binary_logit_adjusted_is_the_sigmoid_of_the_shifted_logit(form):
    # Two classes: softmax([0, z] + tau log pi) is sigmoid(z + tau log(pi_1 / pi_0)).
    loss = _make(losses.LogitAdjustedLoss, form, prior=[0.9, 0.1], tau=1.0)
    values, gradients = _values_and_gradients(loss, BINARY_LOGITS, BINARY_LABELS, form)
    shifted = BINARY_LOGITS + np.log(0.1 / 0.9)
    q = 1 / (1 + np.exp(-shifted))
    expected = -np.where(BINARY_LABELS == 1, np.log(q), np.log(1 - q))
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(gradients.ravel(), q - BINARY_LABELS, rtol=1e-4, atol=1e-6)


def test_ldam_margins_by_hand():
    # Delta_c = 0.5 (n_min / n_c)^(1/4): (1/16)^(1/4) = 1/2, (1/81)^(1/4) = 1/3.
    np.testing.assert_allclose(losses.ldam_margins([16, 81, 1]), [0.25, 0.5 / 3, 0.5])
    np.testing.assert_allclose(losses.ldam_margins([16, 1], max_margin=1.0), [0.5, 1.0])


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_ldam_values_and_gradients(form, scale):
    counts = [81.0, 16.0, 1.0]
    loss = _make(losses.LDAMLoss, form, class_counts=counts, max_margin=0.5, scale=scale)
    values, gradients = _values_and_gradients(loss, MULTI_LOGITS, MULTI_LABELS, form)
    margins = np.array([0.5 / 3, 0.25, 0.5])
    shifted = scale * (MULTI_LOGITS - np.eye(3)[MULTI_LABELS] * margins)
    expected, d_shifted = _cross_entropy_by_hand(shifted, MULTI_LABELS)
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(gradients, scale * d_shifted, rtol=1e-4, atol=1e-6)


def test_binary_ldam_lowers_the_true_class_logit():
    loss = losses.LDAMLoss([16, 1], from_logits=True, reduction=None)  # margins 0.25 and 0.5
    z = BINARY_LOGITS[:, None]
    values = loss(BINARY_LABELS, z).numpy()
    # class 1: CE of [0, z - 0.5] = softplus(0.5 - z); class 0: CE of [-0.25, z] = softplus(z + 0.25).
    expected = np.where(BINARY_LABELS == 1, np.logaddexp(0, 0.5 - BINARY_LOGITS), np.logaddexp(0, BINARY_LOGITS + 0.25))
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize(
    ("counts", "beta", "expected"),
    [
        # beta = 1/2: E_1 = 1, E_2 = (1 - 1/4) / (1/2) = 3/2: w proportional to [1, 2/3], summing to 2.
        ([1, 2], 0.5, [1.2, 0.8]),
        # E_n = 1 + b + ... + b^(n-1) at b = 0.9: E_1 = 1, E_3 = 2.71: w proportional to [1, 1/2.71].
        ([1, 3], 0.9, [2 * 2.71 / 3.71, 2 / 3.71]),
        # Equal counts: equal weights 1.
        ([5, 5, 5], 0.99, [1.0, 1.0, 1.0]),
    ],
)
def test_class_balanced_weights_by_hand(counts, beta, expected):
    weights = losses.class_balanced_weights(counts, beta)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    assert weights.sum() == pytest.approx(len(counts))


def test_class_balanced_weights_approach_inverse_frequency_as_beta_goes_to_1():
    counts = np.array([1000, 100, 10])
    near_one = losses.class_balanced_weights(counts, 1 - 1e-9)
    inverse = (1 / counts) / (1 / counts).sum() * 3
    np.testing.assert_allclose(near_one, inverse, rtol=1e-5)
    # and equal weights as beta goes to 0
    np.testing.assert_allclose(losses.class_balanced_weights(counts, 1e-9), [1, 1, 1], rtol=1e-6)


def test_adjust_probabilities_by_hand():
    # p / pi: [0.6 / 0.8, 0.4 / 0.2] = [0.75, 2] -> [3/11, 8/11].
    np.testing.assert_allclose(losses.adjust_probabilities([[0.6, 0.4]], [0.8, 0.2]), [[3 / 11, 8 / 11]])
    # sigmoid form gives the class-1 column of the two-class form, in the input's shape
    binary = losses.adjust_probabilities(np.array([[0.4], [0.1]]), [80, 20], tau=0.5)
    two_class = losses.adjust_probabilities([[0.6, 0.4], [0.9, 0.1]], [0.8, 0.2], tau=0.5)
    assert binary.shape == (2, 1)
    np.testing.assert_allclose(binary.ravel(), two_class[:, 1])
    np.testing.assert_allclose(losses.adjust_probabilities([[0.6, 0.4]], [0.8, 0.2], tau=0.0), [[0.6, 0.4]])


@pytest.mark.parametrize(
    ("reduction", "denominator"),
    [("sum_over_batch_size", lambda w: len(w)), ("sum", lambda w: 1.0), ("mean_with_sample_weight", np.sum)],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda r: losses.FocalLoss(alpha=[1.0, 2.0, 0.5], reduction=r),
        lambda r: losses.LogitAdjustedLoss([3, 2, 1], reduction=r),
        lambda r: losses.LDAMLoss([30, 20, 10], reduction=r),
    ],
    ids=["focal", "logit_adjusted", "ldam"],
)
def test_reduction_and_sample_weight_are_keras(make, reduction, denominator):
    p = tf.nn.softmax(MULTI_LOGITS)
    w = np.array([1.0, 0.5, 2.0, 0.0, 3.0])
    per_example = make(None)(MULTI_LABELS, p).numpy()
    assert per_example.shape == (5,)
    reduced = float(make(reduction)(MULTI_LABELS, p, sample_weight=w))
    assert reduced == pytest.approx(np.sum(w * per_example) / denominator(w), rel=RTOL)


@pytest.mark.parametrize(
    "loss",
    [
        losses.FocalLoss(gamma=1.5, alpha=[0.3, 0.7], reduction="sum", name="f"),
        losses.FocalLoss(),
        losses.LogitAdjustedLoss([9, 1], tau=0.5, from_logits=True),
        losses.LDAMLoss([9, 1], max_margin=0.3, scale=2.0),
        losses.DeferredReweighting(losses.FocalLoss(gamma=1.0), [0.2, 1.8], switch_step=7, normalize=True),
    ],
    ids=["focal", "focal_default", "logit_adjusted", "ldam", "drw"],
)
def test_config_round_trip(loss):
    again = type(loss).from_config(loss.get_config())
    assert again.get_config() == loss.get_config()
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: losses.FocalLoss(gamma=-1), r"^gamma must be >= 0. Received: gamma=-1$"),
        (lambda: losses.FocalLoss(alpha=[1.0, -0.5]), r"^alpha must be >= 0. Received: alpha=\[1.0, -0.5\]$"),
        (lambda: losses.FocalLoss(alpha=0.25), r"^alpha must be a sequence of finite numbers, one per class"),
        (lambda: losses.LogitAdjustedLoss([0.5, 0.5], tau=-0.5), r"^tau must be >= 0. Received: tau=-0.5$"),
        (
            lambda: losses.LogitAdjustedLoss([10, 0]),
            r"^prior must be > 0 for every class; class 1 has 0. Received: prior=\[10, 0\]$",
        ),
        (lambda: losses.LDAMLoss([10, 0]), r"^class_counts must be > 0 for every class; class 1 has 0"),
        (lambda: losses.LDAMLoss([10, 1], scale=0), r"^scale must be > 0. Received: scale=0$"),
        (lambda: losses.LDAMLoss([10, 1], max_margin=-1.0), r"^max_margin must be >= 0. Received: max_margin=-1.0$"),
        (lambda: losses.class_balanced_weights([10, 1], 1.0), r"^beta must be in \(0, 1\). Received: beta=1.0$"),
        (lambda: losses.class_balanced_weights([10, 1], 0), r"^beta must be in \(0, 1\). Received: beta=0$"),
        (lambda: losses.class_balanced_weights([10, 0, 3], 0.9), r"^class_counts must be > 0 for every class; class 1"),
        (
            lambda: losses.DeferredReweighting(losses.FocalLoss(), [1, 1], switch_step=-1),
            r"^switch_step must be an integer >= 0. Received: switch_step=-1$",
        ),
        (lambda: losses.adjust_probabilities([[0.5, 0.5]], [1, 1], tau=-1), r"^tau must be >= 0. Received: tau=-1$"),
        (
            lambda: losses.adjust_probabilities([[0.2, 0.3, 0.5]], [1, 1]),
            r"^prior has 2 entries but the probabilities have 3 classes",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(make, message):
    with pytest.raises(UserInputError, match=message):
        make()


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        (losses.FocalLoss(alpha=[1.0, 1.0, 1.0]), r"^alpha has 3 entries but the model predicts 2 classes"),
        (losses.LogitAdjustedLoss([1, 1, 1]), r"^prior has 3 entries but the model predicts 2 classes"),
        (
            losses.DeferredReweighting(losses.FocalLoss(), [1, 1, 1], switch_step=0),
            r"^class_weights has 3 entries but the model predicts 2 classes",
        ),
    ],
)
def test_per_class_vectors_must_match_the_model(loss, message):
    with pytest.raises(UserInputError, match=message):
        loss(BINARY_LABELS, tf.nn.sigmoid(BINARY_LOGITS[:, None]))


def _one_batch(num_classes):
    labels = np.array([0, 1, 0, 1, 0, 0] if num_classes == 2 else [0, 1, 2, 0, 2, 0])
    return ct.features(6), labels


def _drw_history(switch_step, *, steps_per_execution, epochs):
    """Per-epoch training loss with lr 0 and one repeated batch, so only the switch changes the loss."""
    x, y = _one_batch(2)
    weights = [0.25, 3.0]
    loss = losses.DeferredReweighting(keras.losses.BinaryCrossentropy(), weights, switch_step=switch_step)
    net = ct.model(loss=loss, optimizer=keras.optimizers.SGD(0.0))
    net.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss, steps_per_execution=steps_per_execution)
    per_example = keras.losses.binary_crossentropy(y[:, None].astype(np.float32), net(x)).numpy()
    unweighted, weighted = per_example.mean(), np.mean(np.asarray(weights)[y] * per_example)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    history = net.fit(
        data,
        steps_per_epoch=steps_per_execution,
        epochs=epochs,
        verbose=0,
        shuffle=False,
        callbacks=[loss.switch_callback()],
    )
    return np.array(history.history["loss"]), unweighted, weighted


def test_deferred_reweighting_switches_at_the_step():
    history, unweighted, weighted = _drw_history(3, steps_per_execution=1, epochs=6)
    np.testing.assert_allclose(history, [unweighted] * 3 + [weighted] * 3, rtol=RTOL)
    assert abs(weighted - unweighted) > 0.1


def test_deferred_reweighting_switches_inside_a_multi_step_execution():
    # Steps 0-1, 2-3, 4-5 run as one call each; the switch at step 3 falls inside the second call.
    history, unweighted, weighted = _drw_history(3, steps_per_execution=2, epochs=3)
    np.testing.assert_allclose(history, [unweighted, (unweighted + weighted) / 2, weighted], rtol=RTOL)


def _hand_split(net, loss, x, y, num_classes):
    """L_c = sum over class-c examples of the per-example loss / B, and ||grad L_c||, by a tape of our own."""
    with tf.GradientTape(persistent=True) as tape:
        per_example = loss.call(tf.constant(y, tf.float32), net(x)) / len(y)
        class_losses = [tf.reduce_sum(per_example[y == c]) for c in range(num_classes)]
    norms = [
        np.sqrt(sum(np.sum(g.numpy() ** 2) for g in tape.gradient(v, net.trainable_weights))) for v in class_losses
    ]
    return [float(v) for v in class_losses], norms


LOSSES_FOR_THE_CALLBACK = {
    "focal": lambda k: losses.FocalLoss(gamma=2.0, alpha=[1.0, 2.0, 3.0][:k]),
    "logit_adjusted": lambda k: losses.LogitAdjustedLoss([6, 3, 1][:k]),
    "ldam": lambda k: losses.LDAMLoss([6, 3, 1][:k], scale=2.0),
    "drw_ldam": lambda k: losses.DeferredReweighting(
        losses.LDAMLoss([6, 3, 1][:k]), [0.5, 1.0, 2.0][:k], switch_step=0
    ),
    "drw_normalized": lambda k: losses.DeferredReweighting(
        losses.FocalLoss(), [0.5, 1.0, 2.0][:k], switch_step=0, normalize=True
    ),
}


@pytest.mark.parametrize(
    ("name", "num_classes"),
    [(name, 3) for name in LOSSES_FOR_THE_CALLBACK] + [("focal", 2), ("drw_ldam", 2)],
)
def test_per_class_gradients_stay_exact(tmp_path, name, num_classes):
    loss = LOSSES_FOR_THE_CALLBACK[name](num_classes)
    net = ct.model(num_classes, loss=loss)
    x, y = _one_batch(num_classes)
    if isinstance(loss, losses.DeferredReweighting):
        loss.bind_step(net.optimizer.iterations)
    expected_losses, expected_norms = _hand_split(net, loss, x, y, num_classes)
    callbacks = [PerClassGradients(str(tmp_path), every_n_steps=1)]
    if isinstance(loss, losses.DeferredReweighting):
        callbacks.insert(0, loss.switch_callback())
    ct.fit(net, tf.data.Dataset.from_tensors((x, y)), callbacks)

    row = callbacks[-1].dataframe().iloc[0]
    class_losses = row[[f"loss_class_{c}" for c in range(num_classes)]].to_numpy(float)
    np.testing.assert_allclose(class_losses, expected_losses, rtol=RTOL)
    np.testing.assert_allclose(class_losses.sum(), row["loss_total"], rtol=RTOL)
    norms = row[[f"gradients_norm_class_{c}" for c in range(num_classes)]].to_numpy(float)
    np.testing.assert_allclose(norms, expected_norms, rtol=1e-4)


def test_deferred_reweighting_normalized_is_the_weighted_mean():
    # After the switch: sum_i w_i l_i / sum_i w_i, PyTorch's cross_entropy(weight=).
    loss = losses.DeferredReweighting(
        losses.LDAMLoss([6, 3, 1], from_logits=True), [0.5, 1.0, 2.0], switch_step=2, normalize=True
    )
    step = tf.Variable(2, dtype=tf.int64)
    loss.bind_step(step)
    plain = losses.LDAMLoss([6, 3, 1], from_logits=True, reduction=None)(MULTI_LABELS, MULTI_LOGITS).numpy()
    w = np.array([0.5, 1.0, 2.0])[MULTI_LABELS]
    assert float(loss(MULTI_LABELS, MULTI_LOGITS)) == pytest.approx(np.sum(w * plain) / np.sum(w), rel=RTOL)
    step.assign(1)
    assert float(loss(MULTI_LABELS, MULTI_LOGITS)) == pytest.approx(np.mean(plain), rel=RTOL)


def _minimise_by_hand(per_class_loss, mass, num_parameters):
    """argmin over constant logits of sum_c m_c loss(c), by Nelder-Mead on a numpy formula (no gradients)."""
    from scipy import optimize

    def objective(b):
        return float(np.dot(mass, per_class_loss(b)))

    return optimize.minimize(objective, np.zeros(num_parameters), method="Nelder-Mead", options={"xatol": 1e-8}).x


def test_minimising_distribution_closed_forms():
    mass = np.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(
        losses.minimising_distribution(keras.losses.SparseCategoricalCrossentropy(), mass), mass, atol=1e-5
    )
    for tau in (0.5, 1.0):
        expected = mass ** (1 - tau) / np.sum(mass ** (1 - tau))
        got = losses.minimising_distribution(losses.LogitAdjustedLoss(mass, tau=tau), mass)
        np.testing.assert_allclose(got, expected, atol=2e-3)


def test_minimising_distribution_of_the_binary_focal_loss():
    mass = np.array([0.9, 0.1])

    def per_class(b):
        value, _ = _focal_by_hand(_two_class(np.array([b[0], b[0]])), np.array([0, 1]), 2.0, None)
        return value

    z = _minimise_by_hand(per_class, mass, 1)[0]
    got = losses.minimising_distribution(losses.FocalLoss(gamma=2.0), mass)
    np.testing.assert_allclose(got[1], 1 / (1 + np.exp(-z)), atol=1e-4)
    assert got[1] > 0.25  # focal pulls the constant prediction far from the 0.1 prior


def test_minimising_distribution_of_ldam():
    counts = np.array([70.0, 20.0, 10.0])
    mass = counts / counts.sum()
    margins = losses.ldam_margins(counts)

    def per_class(b):
        shifted = b[None, :] - np.eye(3) * margins  # row c: class c's logits lowered by its margin
        value, _ = _cross_entropy_by_hand(shifted, np.arange(3))
        return value

    b = _minimise_by_hand(per_class, mass, 3)
    got = losses.minimising_distribution(losses.LDAMLoss(counts), mass)
    np.testing.assert_allclose(got, np.exp(b) / np.exp(b).sum(), atol=1e-4)


def test_switch_callback_without_a_loss_needs_one_on_the_model():
    net = ct.model()
    switch = losses.DeferredReweightingSwitch()
    switch.set_model(net)
    with pytest.raises(UserInputError, match=r"^DeferredReweightingSwitch found no DeferredReweighting loss"):
        switch.on_train_begin()
    drw = losses.DeferredReweighting(keras.losses.BinaryCrossentropy(), [1.0, 2.0], switch_step=1)
    net.compile(optimizer="sgd", loss=[drw])
    switch.on_train_begin()
    assert drw._step is net.optimizer.iterations


def test_deferred_reweighting_before_binding_is_step_0_and_reduction_can_be_set():
    inner = losses.LDAMLoss([6, 3, 1], from_logits=True, reduction=None)
    plain = inner(MULTI_LABELS, MULTI_LOGITS).numpy()
    weights = np.array([0.5, 1.0, 2.0])
    later = losses.DeferredReweighting(inner, weights, switch_step=3)
    now = losses.DeferredReweighting(inner, weights, switch_step=0, reduction="sum")
    assert later.reduction is None and now.reduction == "sum"
    np.testing.assert_allclose(later(MULTI_LABELS, MULTI_LOGITS).numpy(), plain, rtol=RTOL)
    assert float(now(MULTI_LABELS, MULTI_LOGITS)) == pytest.approx(np.sum(weights[MULTI_LABELS] * plain), rel=RTOL)
    copy = type(now).from_config({**now.get_config(), "reduction": None})
    np.testing.assert_allclose(copy(MULTI_LABELS, MULTI_LOGITS).numpy(), weights[MULTI_LABELS] * plain, rtol=RTOL)
