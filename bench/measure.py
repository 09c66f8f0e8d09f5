"""Run one command and measure it: wall time, CPU time and peak RSS of that command alone.

Peak RSS comes from ``os.wait4``, which reports the reaped child only (unlike
``getrusage(RUSAGE_CHILDREN)``, which mixes in every earlier child). But Linux folds
the memory of the process that called ``exec`` into the child's ``ru_maxrss``: a command
spawned straight from this (large) benchmark process would inherit our RSS as its floor.
So a fresh, small interpreter (about 8 MiB) spawns the command, waits for it with
``os.wait4`` and hands back the numbers; its own start-up is not timed.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = """
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
with open(report, "w") as out:
    json.dump({"returncode": code, "wall_seconds": wall,
               "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "peak_rss_bytes": usage.ru_maxrss * 1024}, out)
"""


@dataclass(frozen=True)
class Measurement:
    returncode: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_measured(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
) -> Measurement:
    """Run argv to completion, its output appended to log_path."""
    with log_path.open("ab") as log, tempfile.TemporaryDirectory() as scratch:
        log.write(f"\n$ (cd {cwd} && {shlex.join(argv)})\n".encode())
        log.flush()
        report = Path(scratch) / "measurement.json"
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), *argv]
        subprocess.run(
            launcher, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        if not report.exists():  # the command could not even be started
            return Measurement(returncode=127, wall_seconds=0.0, cpu_seconds=0.0, peak_rss_bytes=0)
        return Measurement(**json.loads(report.read_text()))


@dataclass(frozen=True)
class DiskUsage:
    apparent_bytes: int  # sum of file sizes
    allocated_bytes: int  # blocks on disk, what `du` shows

    @classmethod
    def of(cls, root: Path) -> DiskUsage:
        apparent = allocated = 0
        seen: set[tuple[int, int]] = set()
        for directory, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                info = os.lstat(os.path.join(directory, name))
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
                if not stat.S_ISDIR(info.st_mode):
                    apparent += info.st_size
                allocated += info.st_blocks * 512
        return cls(apparent, allocated)


def log_tail(log_path: Path, lines: int = 15) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])
