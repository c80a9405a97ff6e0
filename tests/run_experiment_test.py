"""The command line: a real run, and user mistakes as one `error:` line with exit code 2 and no traceback."""

import os
import subprocess
import sys

import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num_examples=600", "--num_features=3", "--imbalance_ratio=9", "--steps=20", "--eval_every=10"]


def _run(*args):
    env = dict(os.environ, TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_experiment.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_command_line_run_writes_flags_and_prints_summary(tmp_path):
    proc = _run("--strategy=stratified", f"--output_dir={tmp_path}", *TINY)
    assert proc.returncode == 0, proc.stderr
    (run_name,) = os.listdir(tmp_path)
    assert run_name == "synthetic_stratified_r9_b16_sgd_lr0p05_seed0"
    flags_text = (tmp_path / run_name / "flags.txt").read_text()
    assert "--strategy=stratified" in flags_text and "--steps=20" in flags_text
    assert len(pd.read_csv(tmp_path / run_name / "metrics.csv")) == 2
    assert "step     20/20" in proc.stdout and "average_precision" in proc.stdout


@pytest.mark.parametrize(
    "args, line",
    [
        (["--strategy=bogus"], "error: flag --strategy=bogus: value should be one of <none|class_weight|upsample"),
        (["--imbalance_ratio=0"], "error: --imbalance_ratio must be > 0"),
        (["--target_distribution=0.5,x"], "error: --target_distribution must be a comma-separated list of numbers"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, args, line):
    proc = _run(f"--output_dir={tmp_path}", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert os.listdir(tmp_path) == []
