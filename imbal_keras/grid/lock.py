"""One process per grid folder (or per shard of it): the lock a grid takes before it writes anything.

A lock is a small JSON file in the grid folder, `.lock-<i>-of-<n>` for shard i of n (`.lock-0-of-1` for a whole
grid), created atomically (`O_CREAT | O_EXCL`) and naming its holder: pid, host, the process's start time, when it
was taken and the command. A second process meets a live lock with one error line naming the holder. Two locks
conflict when they are the same shard, or when they cut the grid differently (their runs may overlap); shards
of one cut (`--shard=0/4`, `--shard=1/4`, ...) share a folder.

A lock whose holder is gone is stale and is taken over, with a line saying so: on this host, when its pid is not
alive (or is a newer process under a reused pid); on another host (a shared disk), when the holder has not
refreshed it for an hour (a live holder refreshes it every minute).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable

from imbal_keras import runs
from imbal_keras.errors import UserInputError

_PREFIX = ".lock-"
# A holder on another host refreshes its lock this often; one untouched for STALE_SECONDS is stale.
_REFRESH_SECONDS = 60
STALE_SECONDS = 3600


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a lock (the content of its file).

    Attributes:
      pid: the holder's process id.
      host: its host name.
      started: when it took the lock (seconds since the epoch).
      process_start: its process start time on its host (Linux clock ticks since boot; 0 if unknown).
      command: its command line.
    """

    pid: int
    host: str
    started: float
    process_start: int = 0
    command: str = ""

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on host {self.host} since {when} ({_age(time.time() - self.started)} ago)"


class GridLock:
    """The lock of shard `shard_index` of `shard_count` of the grid in `grid_dir`, as a context manager.

    Entering creates the grid folder if needed and takes the lock (taking over a stale one); leaving releases
    it, and removes the grid folder again if this lock created it and nothing else was written.

    Raises (on entering):
      UserInputError: a live process holds a conflicting lock (the message names it), or the folder cannot be
        written.
    """

    def __init__(self, grid_dir: str, shard_index: int = 0, shard_count: int = 1, *, log: Callable = print):
        self.grid_dir = grid_dir
        self.shard = (shard_index, shard_count)
        self.path = os.path.join(grid_dir, f"{_PREFIX}{shard_index}-of-{shard_count}")
        self._log = log
        self._created_dir = False
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def __enter__(self) -> GridLock:
        try:
            self._created_dir = not os.path.isdir(self.grid_dir)
            os.makedirs(self.grid_dir, exist_ok=True)
            self._take()
        except OSError as e:
            self._remove_created_dir()
            raise UserInputError(
                f"output_dir={self.grid_dir!r} is not writable ({e.strerror or e})", argument="output_dir"
            ) from None
        except UserInputError:
            self._remove_created_dir()
            raise
        self._refresher = threading.Thread(target=self._refresh_until_released, daemon=True)
        self._refresher.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.remove(self.path)
        self._remove_created_dir()

    def refresh(self) -> None:
        """Marks the lock as alive now (its file's time), for holders on other hosts to see."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def _refresh_until_released(self) -> None:
        while not self._stop.wait(_REFRESH_SECONDS):
            self.refresh()

    def _take(self) -> None:
        for _ in range(5):  # a stale lock taken over by another process at the same moment: look again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                self._refuse_or_take_over(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(dataclasses.asdict(_me()), f)
            for other in glob.glob(os.path.join(glob.escape(self.grid_dir), f"{_PREFIX}*")):
                if other != self.path and _conflict(self.shard, other):
                    try:
                        self._refuse_or_take_over(other)
                    except UserInputError:
                        os.remove(self.path)
                        raise
            return
        raise UserInputError(
            f"output_dir={self.grid_dir!r}: could not take its lock {self.path}", argument="output_dir"
        )

    def _refuse_or_take_over(self, path: str) -> None:
        holder = read_holder(path)
        if not stale(holder, path):  # an unreadable lock is one being written now, unless it is old
            who = f"{holder.describe()}{f': {holder.command}' if holder.command else ''}" if holder else "a process"
            raise UserInputError(
                f"output_dir={self.grid_dir!r} is in use by {who}; wait for it to finish, stop it, or use "
                "another --output_dir",
                argument="output_dir",
            )
        if holder is not None:
            self._log(f"Taking over the stale lock of {holder.describe()} (the process is gone)")
        # Moved aside first: of several processes taking over at once, one moves it, the others find it gone.
        aside = f"{path}.stale-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, aside)
            os.remove(aside)

    def _remove_created_dir(self) -> None:
        if self._created_dir:
            with contextlib.suppress(OSError):
                os.rmdir(self.grid_dir)  # only if empty


def read_holder(path: str) -> Holder | None:
    """The holder named in a lock file, or None if the file is gone or unreadable (half-written by a killed
    process: then its age decides, see `stale`)."""
    try:
        with open(path) as f:
            return Holder(**json.load(f))
    except (OSError, ValueError, TypeError):
        return None


def stale(holder: Holder | None, path: str) -> bool:
    """Whether a lock's holder is gone: its process is not alive on this host, or (another host, or an unreadable
    lock) its file has not been refreshed for `STALE_SECONDS`."""
    if holder is not None and holder.host == socket.gethostname():
        if not runs.process_alive(holder.pid):
            return True
        return bool(holder.process_start) and _process_start(holder.pid) not in (0, holder.process_start)
    try:
        return time.time() - os.path.getmtime(path) > STALE_SECONDS
    except OSError:
        return True


def _conflict(shard: tuple[int, int], path: str) -> bool:
    """Whether another lock file's shard may share runs with `shard`."""
    name = os.path.basename(path)[len(_PREFIX) :]
    index, _, count = name.partition("-of-")
    if not (index.isdigit() and count.isdigit()):
        return False  # a `.stale-` leftover, not a lock
    return int(count) != shard[1] or int(index) == shard[0]


def _me() -> Holder:
    return Holder(os.getpid(), socket.gethostname(), time.time(), _process_start(os.getpid()), " ".join(sys.argv))


def _process_start(pid: int) -> int:
    """A process's start time (clock ticks since boot, Linux), which tells a reused pid apart; 0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


__all__ = ["STALE_SECONDS", "GridLock", "Holder", "read_holder", "stale"]
