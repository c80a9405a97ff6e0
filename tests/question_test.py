"""A grid's question as data: its comparisons, its metric and direction, the flags and the errors."""

import dataclasses
import json

import pandas as pd
import pytest
from absl import flags as absl_flags
from absl.testing import flagsaver

from imbal_keras.cli import grid_flags
from imbal_keras.errors import UserInputError
from imbal_keras.grid import answer, presets, report, sweep

STRATEGIES = ("none", "class_weight", "upsample")


def _spec(*argv):
    with flagsaver.flagsaver():
        absl_flags.FLAGS.unparse_flags()
        absl_flags.FLAGS(["run_experiment.py", *argv])
        return grid_flags.to_spec()


@pytest.mark.parametrize(
    ("compare", "families"),
    [
        ("", [("class_weight", ("none",)), ("upsample", ("none",))]),
        ("all:upsample", [("none", ("upsample",)), ("class_weight", ("upsample",))]),
        ("upsample:class_weight", [("upsample", ("class_weight",))]),
        ("upsample:class_weight,none", [("upsample", ("class_weight", "none"))]),
        ("pairs", [("none", ("class_weight", "upsample")), ("class_weight", ("upsample",))]),
    ],
)
def test_each_form_of_compare_names_its_families(compare, families):
    assert sweep.Question(compare=compare).families(STRATEGIES) == families


def test_a_reference_the_grid_lacks_gives_no_family():
    assert sweep.Question().families(("focal", "upsample")) == []


def test_the_default_metric_is_the_tasks_main_one_and_a_bare_name_means_its_test_value():
    assert sweep.Question().resolved_metric(2) == "test_average_precision"
    assert sweep.Question().resolved_metric(10) == "test_balanced_accuracy"
    assert sweep.Question(metric="macro_f1").resolved_metric(2) == "test_macro_f1"
    assert sweep.Question(metric="validation_log_loss").metric == "validation_log_loss"
    assert not sweep.higher_is_better("test_log_loss") and sweep.higher_is_better("test_recall_class_3")


def test_the_question_is_stated_in_words():
    assert sweep.Question().describe(10) == (
        "every strategy against none on test_balanced_accuracy, higher is better (the default question)"
    )
    assert sweep.Question(compare="pairs", metric="brier").describe(2) == (
        "every pair of strategies on test_brier, lower is better"
    )


@pytest.mark.parametrize("bad", ["upsample", "all:none,upsample", "upsample:upsample", ":none", "a:"])
def test_a_bad_compare_is_one_line_naming_the_flag_the_value_and_the_forms(bad):
    with pytest.raises(UserInputError, match=rf"^--compare.*pairs, all:REFERENCE.*Received: --compare={bad}$"):
        sweep.Question(compare=bad)


def test_a_column_that_is_no_recorded_metric_needs_its_direction_in_one_line():
    with pytest.raises(UserInputError, match=r"^--metric acc is not a recorded metric, so its direction is needed: "
                       r"acc:max .*average_precision, .*Received: --metric=acc$"):  # fmt: skip
        sweep.Question(metric="acc")
    with pytest.raises(UserInputError, match=r"^--metric takes COLUMN, COLUMN:max or COLUMN:min\. Received: "
                       r"--metric=acc:up$"):  # fmt: skip
        sweep.Question(metric="acc:up")


@pytest.mark.parametrize(
    ("given", "column", "higher"),
    [
        ("macro_f1", "test_macro_f1", True),
        ("macro_f1:max", "test_macro_f1", True),
        ("log_loss", "test_log_loss", False),
        ("log_loss:max", "test_log_loss", True),
        ("auprc_curve_area:max", "auprc_curve_area", True),
        ("train_seconds:min", "train_seconds", False),
    ],
)
def test_any_column_with_its_direction_inferred_for_recorded_metrics(given, column, higher):
    question = sweep.Question(metric=given)
    assert (question.resolved_metric(2), question.higher_is_better(2)) == (column, higher)
    setup = report.setup_for(question, 2)
    assert (setup.metric, setup.larger_is_better()) == (column, higher)
    assert question.describe(2).endswith(f"on {column}, {'higher' if higher else 'lower'} is better")


def test_a_column_the_tables_lack_is_one_line_naming_the_flag_the_value_and_the_columns():
    results = pd.DataFrame({"run_name": ["a"], "test_macro_f1": [0.5]})
    curves = pd.DataFrame({"run_name": ["a"], "step": [10], "train_loss": [0.3]})
    expected = (
        r"^--metric names nope, a column neither results.csv nor curves.csv has; their columns: run_name, "
        r"test_macro_f1, step, train_loss\. Received: --metric=nope:max$"
    )
    with pytest.raises(UserInputError, match=expected):
        answer.with_metric(results, curves, "nope:max", "nope")


def test_a_curves_column_answers_on_each_runs_last_value():
    results = pd.DataFrame({"run_name": ["a", "b"], "test_macro_f1": [0.5, 0.6]})
    curves = pd.DataFrame(
        {"run_name": ["a", "b", "a", "b"], "step": [20, 10, 10, 20], "train_loss": [0.1, 0.9, 0.7, 0.2]}
    )
    out = answer.with_metric(results, curves, "train_loss:min", "train_loss")
    last = curves.loc[curves.groupby("run_name")["step"].idxmax()].set_index("run_name")["train_loss"]
    assert out["train_loss"].tolist() == last.loc[["a", "b"]].tolist() == [0.1, 0.2]
    assert answer.with_metric(results, curves, "macro_f1", "test_macro_f1") is results


def test_a_metric_without_direction_is_refused_on_the_command_line():
    with pytest.raises(UserInputError, match=r"^--metric my_col is not a recorded metric"):
        _spec("--strategy=none,upsample", "--metric=my_col")
    assert _spec("--strategy=none,upsample", "--metric=my_col:min").question.metric == "my_col:min"


def test_compare_and_metric_travel_from_the_command_line_to_grid_json():
    spec = _spec("--strategy=none,focal,upsample", "--compare=all:none", "--metric=balanced_accuracy")
    assert (spec.question.compare, spec.question.metric) == ("all:none", "test_balanced_accuracy")
    assert sweep.GridSpec.from_dict(spec.to_dict()) == spec
    assert report.setup_for(spec.question, 2).metric == "test_balanced_accuracy"


def test_a_compare_naming_a_strategy_the_grid_does_not_run_is_refused():
    with pytest.raises(UserInputError, match=r"^--compare names focal, which the grid does not run; .*none, upsample"):
        _spec("--strategy=none,upsample", "--compare=upsample:focal")


def test_presets_carry_their_questions_and_a_command_line_overrides_them():
    assert presets.spec_from_preset("seed_question").question == sweep.SEED_QUESTION
    assert presets.spec_from_preset("long_tail").question == sweep.LONG_TAIL_QUESTION
    # The papers' ordering travels through grid.json (stored as lists) and back.
    long_tail = presets.spec_from_preset("long_tail")
    assert sweep.GridSpec.from_dict(json.loads(json.dumps(long_tail.to_dict()))) == long_tail
    assert dict(sweep.LONG_TAIL_QUESTION.published)["ldam"] == pytest.approx(100 - 22.97)
    assert _spec("--preset=long_tail", "--metric=macro_f1").question.metric == "test_macro_f1"


def test_a_grid_json_of_a_single_pair_reads_as_that_pair_on_auprc():
    stored = _spec("--strategy=none,upsample").to_dict()
    stored["question"] = {"treatment": "upsample", "control": "class_weight"}
    question = sweep.GridSpec.from_dict(stored).question
    assert (question.compare, question.metric) == ("upsample:class_weight", "test_average_precision")


def test_a_lower_is_better_metric_is_answered_on_its_negative():
    table = pd.DataFrame({"test_log_loss": [0.2, 0.5], "test_macro_f1": [0.1, 0.3], "my_col": [1.0, 2.0]})
    loss = answer.Setup(metric="test_log_loss")
    assert list(answer.oriented(table, loss)["test_log_loss"]) == [-0.2, -0.5]
    assert answer.oriented(table, answer.Setup(metric="test_macro_f1")) is table
    assert list(answer.oriented(table, answer.Setup(metric="my_col", higher_is_better=False))["my_col"]) == [-1, -2]


def test_a_new_question_of_the_same_runs_replaces_the_saved_one(tmp_path):
    d = str(tmp_path)
    spec = sweep.make_spec({"steps": 30}, {"strategy": STRATEGIES, "seed": (0, 1)})
    sweep.prepare(d, spec)
    asked = dataclasses.replace(spec, question=sweep.Question(compare="pairs", metric="macro_f1"))
    sweep.prepare(d, asked)
    assert sweep.load_spec(d) == asked
    with pytest.raises(UserInputError, match="axis seed"):
        sweep.prepare(d, sweep.make_spec({"steps": 30}, {"strategy": STRATEGIES, "seed": (0, 2)}))
