"""A grid's question as data: its comparisons, its metric and direction, the flags and the errors."""

import dataclasses

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


def test_a_bad_metric_is_one_line_naming_the_flag_the_value_and_the_choices():
    with pytest.raises(UserInputError, match=r"^--metric must be one of average_precision, .*Received: --metric=acc$"):
        sweep.Question(metric="acc")


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
    assert _spec("--preset=long_tail", "--metric=macro_f1").question.metric == "test_macro_f1"


def test_a_grid_json_of_a_single_pair_reads_as_that_pair_on_auprc():
    stored = _spec("--strategy=none,upsample").to_dict()
    stored["question"] = {"treatment": "upsample", "control": "class_weight"}
    question = sweep.GridSpec.from_dict(stored).question
    assert (question.compare, question.metric) == ("upsample:class_weight", "test_average_precision")


def test_a_lower_is_better_metric_is_answered_on_its_negative():
    table = pd.DataFrame({"test_log_loss": [0.2, 0.5], "test_macro_f1": [0.1, 0.3]})
    assert list(answer.oriented(table, "test_log_loss")["test_log_loss"]) == [-0.2, -0.5]
    assert answer.oriented(table, "test_macro_f1") is table


def test_a_new_question_of_the_same_runs_replaces_the_saved_one(tmp_path):
    d = str(tmp_path)
    spec = sweep.make_spec({"steps": 30}, {"strategy": STRATEGIES, "seed": (0, 1)})
    sweep.prepare(d, spec)
    asked = dataclasses.replace(spec, question=sweep.Question(compare="pairs", metric="macro_f1"))
    sweep.prepare(d, asked)
    assert sweep.load_spec(d) == asked
    with pytest.raises(UserInputError, match="axis seed"):
        sweep.prepare(d, sweep.make_spec({"steps": 30}, {"strategy": STRATEGIES, "seed": (0, 2)}))
