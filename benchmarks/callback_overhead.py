"""Training speed with the imbal_keras callbacks attached, against plain fit and stock TensorBoard.

Same 2x64 MLP on synthetic 1:99 data, batch 16, SGD, in one process with one TensorFlow thread. Each
configuration keeps one model and its callbacks for the whole benchmark, and trains in bouts: one `fit` of
`--steps` steps per bout, continuing where the last bout stopped (the step functions the callbacks compile are
kept between fits, `probe.keep_compiled`, and their recorders `reuse`d, so no bout traces). A round runs one bout
of every configuration back to back, in an order that rotates every round; a bout is timed from its 64th step
to its last, so it holds the callbacks' read-backs but not a fit's start. On a shared machine the speed of one
second differs from the next by more than the callbacks cost; bouts of the configurations a second apart see
the same machine, so the benchmark compares them round by round: per round the ratio of plain fit's time per
step to each configuration's, then the median over rounds with a 95% t interval on the mean log ratio. Also
printed: the medians of steps/s and of the process's CPU time per step (which waiting for a core held by other
processes does not inflate), and the load average before and after. One configuration attaches a recorder that
is due every step and records nothing, so its fit runs the probe's step function without a recording op; the
same paired comparison against it is printed as the recording's own cost.

    python -m benchmarks.callback_overhead [--steps 512] [--repeats 40] [--json rows.json] [--breakdown]
    python -m benchmarks.callback_overhead --ops
    python -m benchmarks.callback_overhead --backend=jax [--steps 512] [--repeats 40]

`--backend=jax` runs the same table with Keras on JAX, one XLA thread: Keras picks its backend once per process, so
the command runs itself again with `KERAS_BACKEND=jax`. The configuration recording nothing is TensorFlow's probe
only, so the JAX table leaves it out.

`--ops` instead counts the graph ops of one train step as traced (before TensorFlow's graph optimiser;
constants and placeholders left out): the model's own step, a step recording composition, and one
recording per-class gradients. For a model this small a step's time follows that count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from imbal_keras import callbacks as ik  # noqa: E402
from imbal_keras.callbacks.recorder import StepRecorder  # noqa: E402

_FEATURES = 20
_BATCH = 16
# Steps of a bout before its timing starts (a fit's own start is not what is compared).
_SKIP = 64


def _dataset(seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    y = (rng.random(10_000) < 0.01).astype(np.int32)
    x = (rng.normal(size=(y.size, _FEATURES)) + y[:, None]).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(_BATCH).prefetch(8)


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((_FEATURES,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="binary_crossentropy")
    return model


class _BoutTimer(keras.callbacks.Callback):
    """Wall and CPU seconds per step of one bout, from step `_SKIP` to the end of its epoch.

    CPU time is that of the whole process (every thread), so it counts the work the callbacks add wherever it
    runs, but not the time spent waiting for a core that other processes hold. Placed first, its epoch end comes
    before the callbacks' own; a batch-begin hook keeps Keras's asynchronous batch-end dispatch, as in plain fit.
    """

    def __init__(self):
        super().__init__()
        self._steps = 0
        self._start = None
        self.seconds = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._steps == _SKIP:
            self._start = (time.perf_counter(), time.process_time())
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        steps = self._steps - _SKIP
        self.seconds = {
            "wall": (time.perf_counter() - self._start[0]) / steps,
            "cpu": (time.process_time() - self._start[1]) / steps,
        }


_IDLE = "probe's step function, recording nothing"


class _RecordsNothing(StepRecorder):
    """Due every step and records nothing: the fit runs the probe's step function
    (`_keras_adapter.one_step_train_function` around the model's own train step) without any recording op, so
    the default set against it is what the recording itself costs."""

    def __init__(self, log_dir: str):
        super().__init__(log_dir, every_n_steps=1, num_classes=2)

    def _tags(self) -> list[str]:
        return []

    def _raw_width(self) -> int:
        return 0

    def record_batch(self, step, y, sample_weight) -> None:
        pass


def _breakdown(log_dir: str) -> dict:
    """The default set's two parts alone (`--breakdown`)."""
    return _for_backend(
        {
            "plain fit": lambda: [],
            _IDLE: lambda: [_RecordsNothing(log_dir)],
            "composition only (every step)": lambda: [ik.BatchComposition(log_dir)],
            "per-class gradients only (every 10 steps)": lambda: [ik.PerClassGradients(log_dir, every_n_steps=10)],
            "default callbacks (composition every step, gradients every 10)": lambda: ik.experiment_callbacks(log_dir),
        }
    )


def _configurations(log_dir: str) -> dict:
    """name -> function returning the callbacks of one fit."""
    return _for_backend(
        {
            "plain fit": lambda: [],
            _IDLE: lambda: [_RecordsNothing(log_dir)],
            "default callbacks (composition every step, gradients every 10)": lambda: ik.experiment_callbacks(log_dir),
            "composition + per-class gradients every step": lambda: ik.experiment_callbacks(
                log_dir, gradient_every_n_steps=1
            ),
            'stock TensorBoard(update_freq="batch", histogram_freq=1)': lambda: [
                keras.callbacks.TensorBoard(log_dir, update_freq="batch", histogram_freq=1)
            ],
        }
    )


def _for_backend(configurations: dict) -> dict:
    """The configurations the backend runs: on JAX all but the recorder of nothing (a TensorFlow probe function)."""
    if keras.backend.backend() == "jax":
        configurations.pop(_IDLE)
    return configurations


def _step_ops(callbacks: list) -> int:
    """Non-constant graph ops of the train step that a fit with `callbacks` traces for its first step."""
    from imbal_keras.callbacks import probe

    model = _model()
    probe.keep_compiled(model)  # the probe's step functions outlive the fit, keyed by the recorders they feed
    model.fit(_dataset(), epochs=1, steps_per_epoch=1, callbacks=callbacks, verbose=0)
    functions, _ = probe._KEPT[model]
    probe.forget_compiled(model)
    return _count_ops(next(iter(functions.values()), None) or model.train_function)


def _count_ops(function, seen=None) -> int:
    """Ops of the traced graph of `function` and of the functions it calls (0 if nothing is traced)."""
    seen = set() if seen is None else seen
    if id(function) in seen:
        return 0
    seen.add(id(function))
    if hasattr(function, "_list_all_concrete_functions"):
        (concrete, *_) = function._list_all_concrete_functions()
        graphs = [concrete.graph, *(f.graph for f in concrete.graph._functions.values() if hasattr(f, "graph"))]
        return sum(op.type not in ("Const", "Placeholder", "NoOp") for g in graphs for op in g.get_operations())
    # A Python wrapper: the first traced function it holds is the outermost one, whose graphs hold the rest.
    cells = [c.cell_contents for c in (getattr(function, "__closure__", None) or ()) if _filled(c)]
    return next((n for n in (_count_ops(v, seen) for v in cells if callable(v)) if n), 0)


def _filled(cell) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:
        return False
    return True


def _print_ops() -> None:
    with tempfile.TemporaryDirectory() as log_dir:
        counts = {
            "plain fit": _step_ops([]),
            "composition": _step_ops([ik.BatchComposition(log_dir)]),
            "per-class gradients": _step_ops([ik.PerClassGradients(log_dir, every_n_steps=1)]),
        }
    print(f"{'train step':<24} {'graph ops':>9} {'more than plain':>16}")
    for name, count in counts.items():
        print(f"{name:<24} {count:>9} {count - counts['plain fit']:>16}")


def _run_on(backend: str) -> None:
    """Runs this command again in a process whose Keras runs on `backend`, unless this one does."""
    if keras.backend.backend() == backend:
        return
    env = {**os.environ, "KERAS_BACKEND": backend}
    if backend == "jax":
        # One XLA thread, as TensorFlow runs on one below.
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.callback_overhead", *sys.argv[1:]], env)


def _t_interval(log_ratio: np.ndarray) -> tuple[float, float]:
    """95% t interval of the mean log ratio, back on the ratio scale (NaN for fewer than 2 rounds)."""
    from scipy import stats

    if len(log_ratio) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(log_ratio) - 1) * np.std(log_ratio, ddof=1) / np.sqrt(len(log_ratio))
    mean = float(np.mean(log_ratio))
    return float(np.exp(mean - half)), float(np.exp(mean + half))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=512, help="steps per bout (one fit)")
    parser.add_argument("--repeats", type=int, default=40, help="rounds: bouts per configuration")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--breakdown", action="store_true", help="time the default set's parts alone instead")
    parser.add_argument("--ops", action="store_true", help="count the graph ops of a train step instead")
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow", help="Keras's backend")
    args = parser.parse_args()
    if args.ops and args.backend == "jax":
        parser.error("--ops counts TensorFlow graph ops: it runs with --backend=tensorflow only")
    _run_on(args.backend)
    if args.ops:
        _print_ops()
        return
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # Keras warns on every fit that a tf.data dataset is not shuffled by `shuffle=True`.
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    from imbal_keras.callbacks import probe

    dataset = _dataset()
    load_before = os.getloadavg()[0]
    seconds_per_step = {}
    with tempfile.TemporaryDirectory() as log_dir:
        configurations = {
            name: (_model(), make_callbacks())
            for name, make_callbacks in (_breakdown if args.breakdown else _configurations)(log_dir).items()
        }
        for model, _ in configurations.values():
            if args.backend == "tensorflow":
                probe.keep_compiled(model)
        names = list(configurations)
        # Round -1 is warm-up: tracing, the recorders' buffers, thread pools and kernel caches.
        for round_ in range(-1, args.repeats):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order if round_ % 2 else order[::-1]:
                model, callbacks = configurations[name]
                for callback in callbacks:
                    if isinstance(callback, StepRecorder):
                        callback.reuse(log_dir)
                timer = _BoutTimer()
                model.fit(
                    dataset,
                    initial_epoch=round_ + 1,
                    epochs=round_ + 2,
                    steps_per_epoch=args.steps,
                    callbacks=[timer, *callbacks],
                    verbose=0,
                )
                if round_ >= 0:
                    for clock, seconds in timer.seconds.items():
                        seconds_per_step.setdefault(clock, {}).setdefault(name, []).append(seconds)
        for model, _ in configurations.values():
            probe.forget_compiled(model)

    load_after = os.getloadavg()[0]
    medians = {
        clock: {name: statistics.median(t) for name, t in times.items()} for clock, times in seconds_per_step.items()
    }
    wall, cpu = medians["wall"], medians["cpu"]
    rows = [
        {
            "configuration": name,
            "steps_per_second": 1 / wall[name],
            "ratio_to_plain": wall["plain fit"] / wall[name],
            "cpu_us_per_step": 1e6 * cpu[name],
            "cpu_ratio_to_plain": cpu["plain fit"] / cpu[name],
        }
        for name in names
    ]
    print(f"{'configuration':<66} {'steps/s':>8} {'x plain':>8} {'CPU us/step':>12} {'x plain':>8}")
    for row in rows:
        print(
            f"{row['configuration']:<66} {row['steps_per_second']:>8.0f} {row['ratio_to_plain']:>7.2f}x "
            f"{row['cpu_us_per_step']:>12.0f} {row['cpu_ratio_to_plain']:>7.2f}x"
        )
    print(f"load average (1 min): {load_before:.1f} before, {load_after:.1f} after")
    # Paired: each round runs every configuration once within seconds, so a round's ratio to plain fit cancels
    # what moves between rounds; a t interval on the log ratios says what the rounds can tell apart.
    plain = np.log(seconds_per_step["wall"]["plain fit"])
    print(f"paired over {len(plain)} rounds: wall-time speed relative to plain fit, median [95% t interval]")
    for name in names[1:]:
        log_ratio = plain - np.log(seconds_per_step["wall"][name])
        low, high = _t_interval(log_ratio)
        row = next(r for r in rows if r["configuration"] == name)
        row.update(paired_median=float(np.exp(np.median(log_ratio))), paired_low=low, paired_high=high)
        print(f"  {name:<64} {row['paired_median']:.2f}x [{low:.2f}, {high:.2f}]")
    # What the recording itself costs: the same comparison against the probe's step function recording nothing.
    if _IDLE in seconds_per_step["wall"]:  # TensorFlow only (`_for_backend`)
        idle = np.log(seconds_per_step["wall"][_IDLE])
        print(f"paired over {len(idle)} rounds: relative to {_IDLE!r} (the recording's own cost)")
        for name in names:
            if name in ("plain fit", _IDLE) or not isinstance(configurations[name][1][0], StepRecorder):
                continue
            log_ratio = idle - np.log(seconds_per_step["wall"][name])
            low, high = _t_interval(log_ratio)
            row = next(r for r in rows if r["configuration"] == name)
            row.update(recording_median=float(np.exp(np.median(log_ratio))), recording_low=low, recording_high=high)
            print(f"  {name:<64} {row['recording_median']:.2f}x [{low:.2f}, {high:.2f}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
