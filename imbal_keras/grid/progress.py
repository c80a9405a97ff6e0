"""The grid's progress lines: one per finished run (done / total, elapsed, ETA), notes on how runs ran, and the
closing count of the paths the runs took."""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Sequence

from imbal_keras.grid.tasks import RunOutcome


@dataclasses.dataclass
class Progress:
    """Runs done / total, elapsed time and ETA; one line per finished run.

    Attributes:
      total: runs in the grid (or shard).
      skipped: runs already finished before this invocation.
      log: where lines go.
      started: when the grid started (`time.time()`).
      done_now: runs finished in this invocation.
      said: notes already logged (each is logged once).
    """

    total: int
    skipped: int
    log: Callable[[str], None] = print
    started: float = dataclasses.field(default_factory=time.time)
    done_now: int = 0
    said: set = dataclasses.field(default_factory=set)

    def __call__(self, outcome: RunOutcome) -> None:
        self.done_now += 1
        elapsed = time.time() - self.started
        remaining = self.total - self.skipped - self.done_now
        eta = elapsed / self.done_now * remaining
        status = f"FAILED {outcome.error}" if outcome.error else f"test AP {outcome.test_average_precision:.4f}"
        if outcome.note and outcome.note not in self.said:
            self.said.add(outcome.note)
            self.log(f"note: {outcome.run_name} did not train side by side with its other seeds: {outcome.note}")
        if outcome.path.startswith("plain: ") and outcome.path not in self.said:
            self.said.add(outcome.path)
            self.log(f"note: {outcome.run_name} ran the plain path, not warm: {outcome.path.removeprefix('plain: ')}")
        self.log(
            f"[{self.skipped + self.done_now}/{self.total}] elapsed {_clock(elapsed)} ETA {_clock(eta)}  "
            f"{outcome.run_name}  {status}  ({outcome.seconds:.1f}s)"
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{secs:02d}"


def paths_line(outcomes: Sequence[RunOutcome]) -> str:
    """How the finished runs ran (side by side, warm, cold, plain), as one line; empty when none finished."""
    paths = collections.Counter(o.path.split(":")[0] for o in outcomes if not o.error)
    if not paths:
        return ""
    return (
        f"{paths['side by side']} runs trained side by side with other seeds, {paths['warm']} reused a compiled "
        f"model, {paths['cold']} compiled one to keep, {paths['plain']} ran the plain path (--side_by_side=1 "
        "and --nowarm turn these off)"
    )


__all__ = ["Progress", "paths_line"]
