"""The seed_question preset: its design measures SGD's own spread by source and pairs 12 seeds per dataset."""

import collections

import pandas as pd

from imbal_keras.grid import answer, presets, sweep


def test_seed_question_varies_each_training_seed_alone_on_fixed_data():
    spec = presets.spec_from_preset("seed_question")
    configs = sweep.expand(spec)
    assert len(configs) == 576 and spec.cell_fields() == ["data_seed"]
    variants = collections.Counter(c.strategy.variant() for c in configs)
    assert len(variants) == 6 and set(variants.values()) == {96}  # none, 4 class-weight variants, upsample
    fixed = presets.FIXED_SEED
    designs = collections.Counter(
        (c.seed_for("init") == fixed, c.seed_for("order") == fixed)
        for c in configs
        if c.strategy.name == "upsample" and c.seed_for("data") == 0
    )
    # Per dataset and variant: 12 runs vary both training seeds, 12 only the order, 12 only the init, 12 neither.
    assert designs == {(False, False): 12, (True, False): 12, (False, True): 12, (True, True): 12}
    assert sorted({c.training.seed for c in configs}) == list(range(12)) and fixed > 11


def test_the_verdict_pairs_only_the_runs_that_vary_every_training_seed():
    configs = sweep.expand(presets.spec_from_preset("seed_question"))
    table = pd.DataFrame(
        {
            "seed": [c.training.seed for c in configs],
            "init_seed": [c.seed_for("init") for c in configs],
            "order_seed": [c.seed_for("order") for c in configs],
        }
    )
    assert answer.sgd_runs(table).sum() == 576 // 4


def test_pixel_question_pairs_10_seeds_on_2_segmentation_datasets_over_strategies_for_masks():
    from imbal_keras import strategies

    spec = presets.spec_from_preset("pixel_question")
    configs = sweep.expand(spec)
    assert len(configs) == 60 and spec.cell_fields() == ["data_seed"]
    assert collections.Counter(c.strategy.name for c in configs) == {"class_weight": 20, "dice": 20, "patches": 20}
    assert {c.data.dataset for c in configs} == {"synthetic_segmentation"}
    assert all("segmentation" in strategies.get(c.strategy.name).kinds for c in configs)
    # Paired: for every data seed and training seed, one run of each strategy on the same data.
    pairs = collections.Counter((c.seed_for("data"), c.training.seed) for c in configs)
    assert set(pairs.values()) == {3} and len(pairs) == 20
    question = presets.PRESETS["pixel_question"].question
    assert question.families(["class_weight", "dice", "patches"]) and question.metric == "test_mean_iou"
