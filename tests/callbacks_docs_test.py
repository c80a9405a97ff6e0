"""docs/callbacks.md stays true: its Python blocks run, and its tables name the logged columns."""

import pathlib
import re
import types

import pytest

from imbal_keras import callbacks as ik
from imbal_keras.callbacks import rows

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "callbacks.md"


def _text() -> str:
    return DOC.read_text()


def test_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", _text(), re.S)
    assert blocks, "docs/callbacks.md has no python block"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for number, block in enumerate(blocks):
        exec(compile(block, f"docs/callbacks.md block {number}", "exec"), namespace)

    assert len(namespace["composition"].dataframe()) == 32  # 2 epochs of 16 batches
    assert namespace["gradients"].dataframe()["step"].tolist() == list(range(0, 32, 4))
    assert (tmp_path / "logs" / "run1" / "composition.csv").exists()
    assert len(namespace["custom_gradients"].dataframe()) == 4  # one epoch of 4 batches, a custom train step


def test_tag_table_lists_every_tag():
    first_cells = re.findall(r"^\| `([^`]+)` \|", _text(), re.M)
    documented = {name for name in first_cells if "/" in name}
    composition = ik.BatchComposition("logs", num_classes=2)
    gradients = ik.PerClassGradients("logs", num_classes=2)
    logged = {re.sub(r"class_\d", "class_{c}", tag) for cb in (composition, gradients) for tag in cb._tags()}
    # Dense and multi-label rows' own columns (`rows.output_composition_tags` reads an output's kind, class labels
    # and tag prefix).
    for kind in ("dense", "multi_label"):
        output = types.SimpleNamespace(kind=kind, labels=("{c}",), prefix="")
        logged |= set(rows.output_composition_tags(output))
    assert logged | {"composition/minority_count", *rows.ACCUMULATION_TAGS, rows.EMA_OVERWRITE_TAG} == documented


@pytest.mark.parametrize("name", ["accuracy", "keras_versions"])
def test_numbers_in_the_doc_match_the_tests(name):
    text = _text()
    if name == "accuracy":
        import callbacks_matrix_test as matrix

        assert f"trains {len(matrix.CASES)} configurations" in text
        tolerances = re.findall(r"within ([0-9.e-]+) \+ ([0-9.e-]+) x the value", text)
        expected = [(matrix.ATOL, matrix.RTOL), (matrix.ATOL, matrix.EFFECTIVE_STEP_RTOL)]
        assert [(float(a), float(r)) for a, r in tolerances] == expected
    else:
        from imbal_keras.callbacks import _keras_adapter

        oldest = ".".join(map(str, _keras_adapter.OLDEST_TESTED))
        assert f"need Keras >= {oldest} with the TensorFlow or JAX backend" in text
