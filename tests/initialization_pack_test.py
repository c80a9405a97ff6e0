"""A pack's initial output biases (`initialization.initial_output_biases`) equal each run's own, bit for bit."""

import itertools

import numpy as np
import pytest

from imbal_keras import strategies
from imbal_keras.training import initialization

LABELS = {
    2: np.repeat([0, 1], [594, 6]).astype(np.int32),  # 1:99
    3: np.repeat([0, 1, 2], [300, 60, 12]).astype(np.int32),
}


def _ctx(k, reduction, seed):
    params = {} if reduction is None else {"weight_reduction": reduction}
    return strategies.StrategyContext(
        class_counts=np.bincount(LABELS[k]), target_distribution=np.full(k, 1 / k), batch_size=16, seed=seed,
        params=params, total_steps=100_000,
    )  # fmt: skip


def _packable():
    """Strategies that train in packs (no callbacks but ones that bind the loss's step), with every weight
    reduction they declare."""
    for name in strategies.names(strategies.SINGLE_LABEL):
        strategy = strategies.get(name)
        if strategy.callbacks is not None and not strategy.callbacks_bind_step:
            continue
        reductions = {p.name: p for p in strategy.params}.get("weight_reduction")
        for reduction in reductions.choices if reductions else (None,):
            yield name, reduction


@pytest.mark.parametrize("k", [2, 3])
def test_a_packs_biases_equal_each_runs_own(k):
    runs = [
        (strategies.get(name), _ctx(k, reduction, seed), LABELS[k])
        for (name, reduction), seed in itertools.product(_packable(), (3, 11, 3))
    ]
    together = initialization.initial_output_biases(runs, num_batches=64)
    numeric = 0
    for (strategy, ctx, labels), bias in zip(runs, together, strict=True):
        alone = initialization.initial_output_bias(strategy, ctx, labels, num_batches=64)
        assert np.array_equal(bias, alone), (strategy.name, ctx.params, ctx.seed)
        numeric += not initialization.is_closed_form(strategy, ctx)
    assert numeric >= 6  # the batches drawn through one pipeline, several seeds per group


def test_biases_kept_between_packs_equal_each_runs_own_and_are_found_once(monkeypatch):
    """A worker's cache of biases: a second pack with a seed seen before takes its bias from the cache (no batches
    drawn for it), and every bias, cached or new, equals its run's own."""
    strategy = strategies.get("class_weight")
    seeds = {"first": (3, 11, 3), "second": (11, 5)}
    drawn = []
    draw = initialization._draw_for_seeds

    def counting(strategy, ctx, labels, seeds, num_batches):
        drawn.append(list(seeds))
        return draw(strategy, ctx, labels, seeds, num_batches)

    monkeypatch.setattr(initialization, "_draw_for_seeds", counting)
    cache = {}
    for name, pack in seeds.items():
        runs = [(strategy, _ctx(2, "mean_with_sample_weight", s), LABELS[2]) for s in pack]
        biases = initialization.initial_output_biases(runs, num_batches=64, cache=cache)
        for (_, ctx, labels), bias in zip(runs, biases, strict=True):
            alone = initialization.initial_output_bias(strategy, ctx, labels, num_batches=64)
            assert np.array_equal(bias, alone), (name, ctx.seed)
    # The first pack drew seed 3 once for its two runs of it; the second drew only its new seed.
    assert drawn == [[3, 11], [5]]
    assert len(cache) == 3


def test_a_run_without_a_closed_form_leaves_the_others_of_its_group_in_closed_form():
    """Runs of one strategy and context drawn apart: where one run's batches hold no positive (no closed form,
    L-BFGS-B), the others keep their closed form, each bias as the run alone finds it."""
    strategy = strategies.get("class_weight")
    ctxs = [_ctx(2, "mean_with_sample_weight", seed) for seed in (3, 11)]
    drawn = initialization.draw_batches(strategy, ctxs[0], LABELS[2], 64)
    negatives = (np.zeros_like(drawn[0]), drawn[1])
    together = initialization._minimised_together(strategy, ctxs, [drawn, negatives])
    assert initialization.cross_entropy_minimiser(strategy, ctxs[1], *negatives) is None
    np.testing.assert_array_equal(together[0], initialization.cross_entropy_minimiser(strategy, ctxs[0], *drawn))
    np.testing.assert_array_equal(together[1], initialization._minimised(strategy, ctxs[1], *negatives))
