"""The JAX backend's tests: collected only in a process whose Keras runs on JAX.

The suite's own process runs Keras on TensorFlow; tests/jax_backend_test.py runs these files in a process of
their own with `KERAS_BACKEND=jax`.
"""

import os

if os.environ.get("KERAS_BACKEND") != "jax":
    collect_ignore_glob = ["*.py"]
