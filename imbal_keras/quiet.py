"""Imports TensorFlow without its start-up chatter, for command-line entry points.

TensorFlow's native libraries print CUDA-probing lines to stderr while loading, before any logging setting
applies; on a CPU machine they are noise that buries the one line a user needs to read. Entry points call
`import_tensorflow()` before anything else imports TensorFlow. Library code never calls it.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """Imports and returns TensorFlow with native start-up logging hidden.

    `TF_CPP_MIN_LOG_LEVEL` defaults to 3 (set it yourself to see TensorFlow's native logs). If the import fails
    the error is raised with stderr restored, so nothing is hidden then.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import keras  # noqa: F401  (Keras 3 prints on first import too)
        import tensorflow as tf
    # The runtime is not started here (device discovery then logs at error level, which the default hides), so
    # callers can still size thread pools or split devices afterwards.
    return tf


__all__ = ["import_tensorflow"]
