"""Executors: run a task function over a list of payloads, inline, in local worker processes, or on Ray.

A launcher knows nothing of what it runs (as Hydra's `BasicLauncher.launch(job_overrides)` does not): it calls
`task(payload, threads)` once per payload in some worker, `threads` being the cores that worker may use, and
returns what each call returned. The grid's task (`imbal_keras.grid.tasks.GridTask`) and the set-up of its workers
(`imbal_keras.grid.worker`) are given to it by `imbal_keras.grid.runner`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from imbal_keras.errors import UserInputError, check

EXECUTORS = ("local", "inline", "ray")


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Threads per worker so that `workers` workers together use the cores once: max(1, cores // n)."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // workers)


def check_execution(executor: str, workers: int) -> None:
    """Raises `UserInputError` for an unknown executor or a worker count below 1."""
    check(
        executor in EXECUTORS,
        f"executor must be one of {', '.join(EXECUTORS)}. Received: executor={executor!r}",
        argument="executor",
    )
    check(workers > 0, f"workers must be > 0. Received: workers={workers}", argument="workers")


def execute(
    task: Callable[[Any, int], Any],
    payloads: Sequence[Any],
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str = "",
    setup: Callable[[int], None] | None = None,
    on_done: Callable[[Any], None] = lambda outcome: None,
    pool: LocalPool | None = None,
) -> list[Any]:
    """Calls `task(payload, threads)` for every payload and `on_done(outcome)` in this process as each returns.

    Args:
      task: what runs in a worker; for `local` and `ray` it must pickle (a module-level function or an instance
        of a module-level class).
      payloads: one task call each.
      executor: `local` (a pool of `workers` processes, `LocalPool`, each with max(1, cores // workers) threads),
        `inline` (this process, one call at a time, with every core) or `ray` (Ray tasks on the cluster at
        `ray_address`, one CPU each).
      workers: local worker processes.
      ray_address: Ray cluster address (`auto`, `ray://host:10001`, ...); empty starts a local Ray instance.
      setup: `setup(threads)` runs once in each local worker process as it starts (e.g. to import heavy modules
        while the parent submits work).
      on_done: progress callback.
      pool: for `local`, workers already started (`LocalPool`, whose `setup` and worker count then apply); the
        call stops them when it returns. None starts a pool here.

    Returns:
      What each call returned, in completion order.

    Raises:
      UserInputError: bad executor or worker count, Ray not installed or its cluster unreachable.
    """
    check_execution(executor, workers)
    outcomes: list[Any] = []

    def done(outcome: Any) -> None:
        outcomes.append(outcome)
        on_done(outcome)

    if executor == "inline":
        for payload in payloads:
            done(task(payload, worker_threads(1)))
    elif executor == "local":
        pool = pool or LocalPool(min(workers, len(payloads)) or 1, setup)
        pool.run(task, payloads, done)
    else:
        _execute_ray(task, payloads, ray_address, done)
    return outcomes


class LocalPool:
    """Local worker processes, started when the pool is made: they import TensorFlow (several seconds each)
    while the caller still prepares the work (`imbal_keras.grid.runner` checks the first run and writes the grid
    folder meanwhile).

    Ctrl-C reaches the whole process group; the workers never see it (they start with SIGINT blocked, see
    `_sigint_blocked`), so they print no traceback: `run` stops them and re-raises. A pool is used once: `run`
    stops it when it returns, and `close` stops one that never ran (an error before the work was ready).

    Args:
      workers: worker processes, each with max(1, cores // workers) threads.
      setup: `setup(threads)` runs once in each worker as it starts.
      preload: modules the workers' fork server imports once (`worker_context`).
    """

    def __init__(self, workers: int, setup: Callable[[int], None] | None = None, *, preload: Sequence[str] = ()):
        import concurrent.futures

        self.threads = worker_threads(workers)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=worker_context(preload),
            initializer=_start_worker,
            # This process's environment now: a worker forked from the server would otherwise see the server's,
            # from when it started (multiprocessing hands a worker this process's path and folder, not this).
            initargs=(setup, self.threads, dict(os.environ)),
        )
        with _sigint_blocked():  # the workers inherit the blocked signal; the pool starts one per submit
            for _ in range(workers):
                self._pool.submit(_ready)

    def run(self, task, payloads, done) -> None:
        """Calls `task(payload, threads)` for every payload in the workers, `done(outcome)` as each returns; then
        stops the workers."""
        import concurrent.futures

        if not payloads:  # nothing to wait for: the workers may still be importing
            self.close()
            return
        try:
            with _sigint_blocked():
                futures = [self._pool.submit(task, payload, self.threads) for payload in payloads]
            for future in concurrent.futures.as_completed(futures):
                done(future.result())
        except BaseException:
            self.close()
            raise
        self._pool.shutdown(wait=True)

    def close(self) -> None:
        """Stops the workers now (a worker killed mid-run leaves only its hidden staging folder; finished runs are
        already published)."""
        import multiprocessing

        for child in multiprocessing.active_children():
            child.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


def worker_context(preload: Sequence[str] = ()):
    """The multiprocessing context local workers start in.

    Where the platform has it, `forkserver`: workers are forked from one server process that imported `preload`
    (TensorFlow, say: about 5 s) once for the whole Python process, so a second grid's workers, or a grid after
    `start_worker_server`, start in a fraction of a second; the server never starts TensorFlow's runtime (thread
    pools, devices), which each worker starts after forking, with its own thread settings. Elsewhere `spawn`
    (each worker imports for itself). Never `fork`: the caller has usually started TensorFlow's runtime.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    start_worker_server(preload)
    return multiprocessing.get_context("forkserver")


def start_worker_server(preload: Sequence[str] = ()) -> None:
    """Starts the server local workers fork from (`worker_context`), importing `preload` in it, and returns at
    once: the import runs beside the caller's work. Does nothing where there is no such server, or once it runs
    (its preload is then what the first call gave).

    The server and every worker forked from it ignore SIGINT (a Ctrl-C is the parent's to handle, see
    `_sigint_ignored`). It stops when this process ends, and its workers with it (`imbal_keras.grid.worker`).
    """
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    forkserver.set_forkserver_preload(list(preload))
    # The server imports `preload` with Python's default search path (3.11 does not pass it this process's); the
    # workers themselves get this process's path from multiprocessing.
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        with _sigint_blocked(), _sigint_ignored():
            forkserver.ensure_running()
    finally:
        if path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = path


def _start_worker(setup: Callable[[int], None] | None, threads: int, environment: dict[str, str]) -> None:
    """A local worker's first step: the pool's process's environment as it was when the pool started (as a spawned
    worker inherits it), SIGINT blocked (however the worker was started: a Ctrl-C is the parent's to handle), then
    the caller's `setup`."""
    os.environ.clear()
    os.environ.update(environment)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    if setup is not None:
        setup(threads)


def _ready() -> None:
    """The task that makes a pool start a worker."""


@contextlib.contextmanager
def _sigint_ignored():
    """Ignores SIGINT in this process for the duration, where it can (the main thread): a process started meanwhile
    keeps ignoring it through its `exec` and Python's start-up, so the workers' server is never interrupted while
    it imports, and hands the setting on to its workers."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _sigint_blocked():
    """Blocks SIGINT in this thread for the duration: processes started meanwhile inherit the blocked signal (a
    Ctrl-C never interrupts them); one that arrives here meanwhile is delivered when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _check_reachable(address: str) -> None:
    """Fails fast on a `host:port` address nothing listens on (`ray.init` would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):
        return  # `auto`, empty (start a local Ray) or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UserInputError(
            f"ray_address={address!r} is unreachable ({e.strerror or e})", argument="ray_address"
        ) from None


def connect_ray(ray_address: str):
    """Imports Ray and connects to its cluster (once per process).

    Returns:
      The `ray` module.

    Raises:
      UserInputError: Ray is not installed, or the cluster is unreachable.
    """
    try:
        import ray
    except ImportError:
        raise UserInputError(
            "executor=ray needs Ray: pip install 'imbal_keras[ray]' (in the repository: pip install -r "
            "requirements-ray.txt). Received: executor='ray'"
        ) from None
    if not ray.is_initialized():
        _check_reachable(ray_address)
        try:
            ray.init(address=ray_address or None, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            message = " ".join(str(e).split())[:200]
            raise UserInputError(
                f"ray_address={ray_address!r} is unreachable ({message})", argument="ray_address"
            ) from None
    return ray


def _call(task, payload, threads):
    """A Ray task: `ray.remote` takes functions, not callable objects."""
    return task(payload, threads)


def _execute_ray(task, payloads, ray_address, done) -> None:
    ray = connect_ray(ray_address)
    remote = ray.remote(num_cpus=1)(_call)
    pending = [remote.remote(task, payload, 1) for payload in payloads]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done(ray.get(ready[0]))


__all__ = [
    "EXECUTORS",
    "LocalPool",
    "check_execution",
    "connect_ray",
    "execute",
    "start_worker_server",
    "worker_context",
    "worker_threads",
]
