"""The callbacks on the JAX backend (tests/jax/), in a process of their own.

This process runs Keras on TensorFlow, and Keras picks its backend once per process, so the JAX tests run in a
child process with `KERAS_BACKEND=jax`. Skipped where jax is not installed (`pip install imbal_keras[jax]`).
"""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install imbal_keras[jax])"
)
def test_the_callbacks_pass_their_tests_on_the_jax_backend():
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT}
    # One XLA thread, as the suite's TensorFlow runs on one: the tests stay small on a shared 2-core machine.
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests/jax"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
