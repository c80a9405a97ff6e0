"""Peak-memory measurement shared by the benchmarks: each pipeline runs in a child process of its own."""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def rss_mib() -> float:
    """This process's resident set size now, in MiB."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def peak_mib() -> float:
    """This process's peak resident set size so far (`ru_maxrss`), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_rows(module: str, child_flag: str, names, forwarded: list[str]) -> list[dict]:
    """Runs `python -m module child_flag NAME *forwarded` for each name; each child prints its row as JSON last."""
    rows = []
    for name in names:
        command = [sys.executable, "-m", module, child_flag, name, *forwarded]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def write_json(path: str | None, rows: list[dict]) -> None:
    """Writes `rows` to `path` (the benchmarks' `--json PATH`), if given."""
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=2)
