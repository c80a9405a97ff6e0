"""Setting up a grid worker process: TensorFlow's thread pools, tf.data options, the garbage collector, and the
compiled models the process keeps between runs.

The grid's tasks (`imbal_keras.grid.tasks`) call `warm_cache` before each run; the local executor also calls
`configure_worker` when it starts a worker process, so that TensorFlow is imported while the parent submits work.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal

# What the server that local workers fork from imports once (`imbal_keras.grid.launch.worker_context`).
PRELOAD = ("imbal_keras.grid.worker_imports",)
_configured_threads: int | None = None
# The compiled models this worker process keeps between runs (`imbal_keras.training.warm`), created at its
# first warm run.
_WARM = None


def configure_worker(threads: int) -> None:
    """Sizes TensorFlow's thread pools, imports what a run needs and freezes it out of the garbage collector.

    Once per process; later calls do nothing.

    The pools are sized through `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS`, which TensorFlow reads
    when its runtime starts (at the first op or device query, here), so this runs before any TensorFlow work
    in the process: true for the local pool's and Ray's workers; the inline executor keeps the parent's pools.

    Args:
      threads: TensorFlow threads of this process (intra-op and inter-op each).
    """
    global _configured_threads
    if _configured_threads is not None:
        return
    _die_with_parent()
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    from imbal_keras import quiet

    quiet.import_tensorflow()
    from imbal_keras.training import experiment  # noqa: F401  (everything a run imports, so the freeze below covers it)

    # `keras.backend.clear_session()` before each run does a full collection, which walked the ~440k objects of
    # TensorFlow's and Keras' modules every time (0.3 s a run). Frozen, they are skipped: 0.02-0.07 s.
    gc.collect()
    gc.freeze()
    _configured_threads = threads


def _die_with_parent() -> None:
    """Ends this worker as soon as the grid process that started it ends (even by SIGKILL).

    Otherwise a killed grid would leave workers that finish their current run and race a resumed grid. A worker
    forked from the workers' server (`imbal_keras.grid.launch.worker_context`) has that server as its parent in
    the kernel's eyes, and the server lives while its workers do; so a thread watches the grid process's
    sentinel (multiprocessing's pipe from it, closed when it ends) and ends the worker at once. A spawned worker
    also asks the kernel for SIGKILL when its parent dies (Linux).
    """
    import multiprocessing
    import threading

    grid = multiprocessing.parent_process()
    if grid is not None:

        def watch() -> None:
            grid.join()
            os._exit(1)  # as a SIGKILL would: the run in flight leaves only its hidden staging folder

        threading.Thread(target=watch, name="grid-process-watch", daemon=True).start()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def worker_data_options():
    """`tf.data.Options` for runs in grid workers: autotuning off.

    A worker owns a fixed share of the cores, so tf.data's autotuner has nothing to tune. It also runs a
    background thread per iterator that the iterator's destructor joins; with another worker keeping the other
    core busy, that join waited up to 1.6 s at the end of every other run (seen in gdb: `~LogicalThreadWrapper`
    under `RootDataset::Iterator::~Iterator`), a quarter of the 2-worker grid's time. Batches are unchanged.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def warm_cache(threads: int, warm: bool):
    """Sets up this worker process for a run; returns its warm cache (None when warm runs are off).

    Args:
      threads: TensorFlow threads of this process (see `configure_worker`).
      warm: whether the process keeps compiled models between runs (`imbal_keras.training.warm`).

    Returns:
      The process's `WarmModels`, its `last_path` reset, or None.
    """
    global _WARM
    configure_worker(threads)
    import keras

    from imbal_keras.training.warm import WarmModels

    if warm and _WARM is None:
        _WARM = WarmModels()  # the grid's progress says how each run ran (RunOutcome.path)
    cache = _WARM if warm else None
    if cache is None:
        # A worker runs many configs: without this, Keras' global state (traced functions, layer registries)
        # grows run after run and every few runs a garbage collection over it stalls one run for 10-30 s. The
        # warm cache bounds that state itself (it clears the session when full).
        keras.backend.clear_session()
    else:
        cache.last_path = ""
    return cache


def discard_warm_models() -> None:
    """Drops the compiled models this process keeps: the next warm run compiles anew (and keeps that model)."""
    global _WARM
    _WARM = None


__all__ = ["PRELOAD", "configure_worker", "discard_warm_models", "warm_cache", "worker_data_options"]
