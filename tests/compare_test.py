"""compare(): your model and data through strategies x seeds, in this process and in 2 workers; one run by path;
the python blocks of docs/datasets.md and docs/models.md."""

import glob
import json
import os
import re
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import imbal_keras
from imbal_keras.config import DataConfig, ExperimentConfig, ModelConfig, OutputConfig, TrainingConfig
from imbal_keras.errors import UserInputError
from imbal_keras.grid import report, sweep
from imbal_keras.training import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"steps": 10, "eval_every": 5, "batch_size": 16, "log_composition": False, "gradient_every_n_steps": 0}

_MODULE = """
import os
import keras

def _mark():
    with open(os.path.join(os.environ["COMPARE_TEST_MARKS"], "calls.txt"), "a") as f:
        f.write(f"{os.getpid()}\\n")

def build(input_shape, num_classes, seed):
    _mark()
    inputs = keras.Input(input_shape)
    h = keras.layers.Dense(4, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))

def embedding(input_shape, features, seed):
    _mark()
    inputs = keras.Input(input_shape)
    code = [i for i, f in enumerate(features) if f.kind == "categorical"][0]
    numeric = keras.ops.take(inputs, [i for i in range(input_shape[0]) if i != code], axis=1)
    embedded = keras.layers.Flatten()(keras.layers.Embedding(features[code].cardinality, 2)(inputs[:, code]))
    h = keras.layers.Concatenate()([numeric, embedded])
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))

def two_units(input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """An importable module of model functions that log each call's process id."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "user_compare.py").write_text(textwrap.dedent(_MODULE))
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.syspath_prepend(str(code))  # spawned workers start with this sys.path
    monkeypatch.setenv("COMPARE_TEST_MARKS", str(marks))
    monkeypatch.delitem(sys.modules, "user_compare", raising=False)
    import user_compare

    return user_compare


def _calls(tmp_path) -> list[int]:
    path = tmp_path / "marks" / "calls.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _arrays(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 6 == 0).astype(int)
    return (rng.normal(size=(n, 3)) + 1.5 * y[:, None]).astype(np.float32), y


@pytest.mark.slow
def test_compare_arrays_in_process_and_resume(tmp_path, user_module):
    out = str(tmp_path / "cmp")
    result = imbal_keras.compare(
        user_module.build, _arrays(), strategies=["none", "upsample"], seeds=2, output_dir=out, verbose=0, **TINY
    )
    assert sorted(zip(result.results["strategy"], result.results["seed"], strict=True)) == [
        ("none", 0), ("none", 1), ("upsample", 0), ("upsample", 1),
    ]  # fmt: skip
    # The function built every model, all in this process: once to check it up front, then once per seed (a pack's
    # runs of one seed and another strategy take that build with their own output bias).
    assert _calls(tmp_path) == [os.getpid()] * 3
    (saved,) = glob.glob(os.path.join(out, "data", "arrays-*.npz"))
    with open(os.path.join(out, "runs", result.results["run_name"][0], "config.json")) as f:
        config = json.load(f)
    assert config["data"]["dataset"] == f"npz:{saved}" and config["model"]["model"] == "user_compare:build"
    assert os.path.exists(os.path.join(out, "report.md")) and os.path.exists(os.path.join(out, "report.html"))
    # The report states the data as given: 240 rows (40 positives: every sixth), 3 features, its own ratio.
    with open(os.path.join(out, "report.md")) as f:
        markdown = f.read()
    used = markdown[markdown.index("## Data used") :].split("\n## ")[0]
    assert "## The question: every strategy against none on test_average_precision, higher is better (the default" in (
        markdown
    )
    assert "at its own class ratio: 240 rows, 3 features" in used and "(4 runs)" in used
    # The summary's means are the means of the results table's seeds.
    means = result.results.groupby("strategy_variant")[report.AUPRC].mean()
    pd.testing.assert_series_equal(result.mean().sort_index(), means.sort_index(), check_names=False)
    assert (result.summary.query("kind == 'cell' and metric == @report.AUPRC")["n"] == 2).all()
    assert len(result.curves) == 4 * 2  # two evaluations per run
    # The results state the data given (240 rows, 200 / 40, kept at its own ratio; stratified 60/20/20 splits),
    # not the synthetic defaults (50000 examples, 20 features).
    assert (result.results["data_rows"] == 240).all()
    counts = result.results[[f"data_class_counts_{s}" for s in ("train", "validation", "test")]].drop_duplicates()
    assert counts.values.tolist() == [["120/24", "40/8", "40/8"]]
    assert result.results["num_examples"].isna().all() and result.results["num_features"].isna().all()
    again = imbal_keras.compare(
        user_module.build, _arrays(), strategies=["none", "upsample"], seeds=2, output_dir=out, verbose=0, **TINY
    )
    assert len(_calls(tmp_path)) == 4  # the check up front only: every run was finished
    pd.testing.assert_frame_equal(again.results, result.results)
    # A question on any column of the tables, with its direction; a column they lack is one line naming them.
    timed = imbal_keras.compare(user_module.build, _arrays(), strategies=["none", "upsample"], seeds=2, output_dir=out,
                                verbose=0, metric="train_seconds:min", **TINY)  # fmt: skip
    with open(os.path.join(out, "report.md")) as f:
        assert "## The question: every strategy against none on train_seconds, lower is better" in f.read()
    pd.testing.assert_frame_equal(timed.results, result.results)
    with pytest.raises(UserInputError, match=r"^--metric names nope, a column neither .*train_seconds.*Received: "
                       r"--metric=nope:max$"):  # fmt: skip
        imbal_keras.compare(user_module.build, _arrays(), strategies=["none", "upsample"], seeds=2, output_dir=out,
                            verbose=0, metric="nope:max", **TINY)  # fmt: skip


def _table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    fraud = (np.arange(n) % 5 == 0).astype(int)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": rng.normal(50, 10, n) + 20 * fraud,
            "shop": rng.choice(["a", "b", "c"], n),
            "fraud": fraud,
        }
    )
    frame.loc[frame.index % 7 == 3, "amount"] = np.nan
    frame.loc[frame.index % 13 == 4, "shop"] = None
    return frame


@pytest.mark.slow
def test_compare_dataframe_in_two_workers(tmp_path, user_module):
    out = str(tmp_path / "cmp")
    result = imbal_keras.compare(
        "user_compare:embedding",
        _table(),
        strategies=["none", "class_weight"],
        seeds=[3],
        output_dir=out,
        workers=2,
        verbose=0,
        label_column="fraud",
        categorical_columns=["shop"],
        drop_columns=["id"],
        **TINY,
    )
    assert sorted(result.results["strategy"]) == ["class_weight", "none"]
    assert (result.results["seed"] == 3).all()
    for name in result.results["run_name"]:
        with open(os.path.join(out, "runs", name, "config.json")) as f:
            assert json.load(f)["data"]["categorical_columns"] == ["shop"]
    calls = _calls(tmp_path)
    assert len(calls) == 3 and calls[0] == os.getpid() and os.getpid() not in calls[1:]  # workers built the runs
    (saved,) = glob.glob(os.path.join(out, "data", "table-*.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(saved), _table())


def test_compare_tf_dataset_checks_its_class_counts(tmp_path, user_module):
    x, y = _arrays()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(50)
    out = str(tmp_path / "cmp")
    with pytest.raises(UserInputError, match=r"^class_counts does not match the dataset, which holds \[200, 40\]"):
        imbal_keras.compare(user_module.build, dataset, class_counts=[199, 41], output_dir=out, verbose=0, **TINY)
    assert not os.path.exists(out)
    result = imbal_keras.compare(
        user_module.build, dataset, class_counts=[200, 40], strategies=["none"], seeds=1, output_dir=out, verbose=0,
        **TINY,
    )  # fmt: skip
    assert len(result.results) == 1


def _nested():
    def build(input_shape):
        return None

    return build


@pytest.mark.parametrize(
    ("model", "data", "extra", "message"),
    [
        (lambda input_shape: None, "arrays", {}, r"^model must be a module-level function, importable by path"),
        (_nested(), "arrays", {}, r"^model must be a module-level function.*Received: model=_nested.<locals>.build"),
        ("no_module_abc:build", "arrays", {}, r"^model='no_module_abc:build' does not import: ModuleNotFoundError"),
        ("user_compare:two_units", "arrays", {}, r"^model='user_compare:two_units' outputs shape \(batch, 2\)"),
        ("user_compare:build", (np.zeros((5, 2)), np.zeros(4)), {}, r"^data: expected x of shape \(N, ...\)"),
        ("user_compare:build", "arrays", {"dataset": "csv:x.csv"}, r"^pass data or the dataset setting, not both"),
        ("user_compare:build", "arrays", {"batch_size": 0}, r"^batch_size must be >= 1. Received: batch_size=0"),
        (
            "user_compare:build",
            "arrays",
            {"question": sweep.Question(compare="upsample:focal")},
            r"^--compare names focal, which the grid does not run; its strategies: none, class_weight, upsample",
        ),
    ],
)
def test_compare_bad_input_is_one_line_and_writes_nothing(tmp_path, user_module, model, data, extra, message):
    out = str(tmp_path / "cmp")
    data = _arrays() if isinstance(data, str) else data
    with pytest.raises(UserInputError, match=message) as error:
        imbal_keras.compare(model, data, output_dir=out, verbose=0, **{**TINY, **extra})
    assert "\n" not in str(error.value)
    assert not os.path.exists(out)


def test_one_run_with_a_model_function_by_path(tmp_path, user_module):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    config = ExperimentConfig(
        data=DataConfig(dataset=f"npz:{tmp_path}/d.npz", imbalance_ratio=0),
        model=ModelConfig(model="user_compare:build", zero_output_kernel=True),
        training=TrainingConfig(steps=10, eval_every=5, batch_size=16),
        output=OutputConfig(output_dir=str(tmp_path / "runs"), log_composition=False, gradient_every_n_steps=0),
    )
    lines = []
    result = experiment.run(config, log=lines.append)
    assert list(result.curve["step"]) == [5, 10]
    bias_line = [line for line in lines if "output bias" in line]
    # The training split holds 24 of 144 positives (1:5); strategy `none` trains on that prior.
    expected = rf"model=user_compare:build: output bias of layer 'dense_\d+' set to \[{np.log(24 / 120):.4f}\] and its"
    assert len(bias_line) == 1 and re.fullmatch(expected + " kernel to zero", bias_line[0])
    assert _calls(tmp_path) == [os.getpid()]


def _python_blocks(page):
    with open(os.path.join(ROOT, page)) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.M | re.S)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["docs/datasets.md", "docs/models.md"])
def test_doc_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = _python_blocks(page)
    assert blocks, page
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(ROOT)  # `examples.*` imports from the repository root
    scope = {}
    for block in blocks:
        exec(compile(block, page, "exec"), scope)
