"""Under the PyTorch backend the callbacks refuse in one line when they are created, naming the backend.

Keras imports torch for that backend, so this runs where torch is installed (a CPU build: `pip install
torch==2.13.0` on the project's machines, docs/callbacks.md) and is skipped elsewhere. It runs in a subprocess
because the backend is fixed when Keras is first imported.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

_SCRIPT = """
from imbal_keras.callbacks import BatchComposition, PerClassGradients
from imbal_keras.errors import UserInputError

for cls in (BatchComposition, PerClassGradients):
    try:
        cls("unused")
    except UserInputError as error:
        print(error)
"""


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_the_callbacks_refuse_the_torch_backend_in_one_line():
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert [line.split(" ")[0] for line in lines] == ["BatchComposition", "PerClassGradients"], result.stdout
    assert all("backend 'torch'" in line for line in lines), lines
