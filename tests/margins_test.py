"""Equivalence margins: flags -> the grid's question -> the report's answers."""

import pytest
from absl import flags as absl_flags
from absl.testing import flagsaver

from imbal_keras.cli import grid_flags
from imbal_keras.grid import report, sweep


def _spec(*argv):
    with flagsaver.flagsaver():
        absl_flags.FLAGS.unparse_flags()
        absl_flags.FLAGS(["run_experiment.py", *argv])
        return grid_flags.to_spec()


def test_margins_travel_from_the_command_line_to_the_question_and_grid_json():
    spec = _spec("--strategy=none,upsample", "--metric_margin=0.05", "--spread_margin=2")
    assert (spec.question.metric_margin, spec.question.area_margin, spec.question.spread_margin) == (0.05, 0.02, 2.0)
    assert sweep.GridSpec.from_dict(spec.to_dict()) == spec
    margins = report.setup_for(spec.question).margins
    assert (margins.metric, margins.area, margins.spread) == (0.05, 0.02, 2.0)


def test_a_grid_json_without_margins_reads_with_the_documented_defaults():
    stored = _spec("--strategy=none,upsample").to_dict()
    stored["question"] = {"treatment": "upsample", "control": "class_weight"}
    question = sweep.GridSpec.from_dict(stored).question
    assert (question.metric_margin, question.area_margin, question.spread_margin) == (0.02, 0.02, 1.5)


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--metric_margin=0", "--metric_margin must be > 0"), ("--spread_margin=1", "--spread_margin must be > 1")],
    ids=["metric", "spread"],
)
def test_bad_margins_are_refused_with_the_flag_named(flag, message):
    with pytest.raises(absl_flags.IllegalFlagValueError, match=message):
        _spec("--strategy=none,upsample", flag)
