"""SQLite benchmark: Strongbox's record-aware backup against ``sqlite3 DB .dump``.

    python bench/sqlite_bench.py                          # 1M messages, RSS also at 100k
    python bench/sqlite_bench.py --messages-total 20000 --rss-sizes 5000     # quick run

For each size a demo application database is generated (strongbox.demo.app_database:
projects → sessions → messages, 200 x 50 x 100 for one million messages), then, side by
side in one run:

- backup:   ``backup_sqlite`` into a fresh encrypted repository (consistent view, schema,
            page copy; the tables' rows are read from the page copy when needed)  vs
            ``sqlite3 DB .dump > dump.sql``;
- backup-rows: the same with ``row_streams=True`` (every table also stored as a typed row
            stream) into another fresh repository, to show what that layout costs;
- rebackup: Strongbox again, database unchanged (what deduplication saves);
- restore:  the full restore (``restore_sqlite`` once that module exists, else the page
            copy written back from the repository)  vs  ``sqlite3 new.db < dump.sql``.

Each step runs in a child process measured with ``os.wait4`` (wall time, CPU, peak RSS;
see measure.py). A Strongbox step also times its operation inside the process (``op s``):
the backup (or restore) call itself, once Python has started (about 0.2 s, which the server
pays once, not per backup) and the repository is open (scrypt key derivation and index
load, about 0.1 s). Both restored databases are checked with ``PRAGMA integrity_check``
and the row count of every table. Time ratios are ``competitor / strongbox``: above 1 means
Strongbox is faster. Targets: backup at least 2x faster than .dump (judged on the
operation, the process figure shown next to it); Strongbox's peak RSS
independent of table size (the two largest sizes within 25 % of each other).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from measure import DiskUsage, log_tail, run_measured
from strongbox.demo.app_database import generate
from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository
from strongbox.sources.sqlite.backup import backup_sqlite
from strongbox.sources.sqlite.reader import SnapshotReader

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "work" / "sqlite"
PASSPHRASE = "strongbox-bench-passphrase"
MIB = 1024 * 1024
MESSAGES_PER_SESSION = 100
SESSIONS_PER_PROJECT = 50
BACKUP_TARGET = 2.0  # .dump time / Strongbox backup time
RSS_GROWTH_LIMIT = 1.25  # Strongbox peak RSS, largest size / next size down
PHASES = ("backup", "backup-rows", "rebackup", "restore")
TOOLS = ("strongbox", "sqlite3")
COMPETITOR_PHASE = {"backup": "backup", "backup-rows": "backup", "rebackup": "backup",
                    "restore": "restore"}

# A shell only for the redirection; `exec` makes sqlite3 itself the measured process.
DUMP_SH = 'exec sqlite3 "$1" .dump > "$2"'
LOAD_SH = 'exec sqlite3 "$1" < "$2"'


# ---------------------------------------------------------------- steps (child processes)


def open_repository(path: Path) -> Repository:
    return Repository.open(LocalBackend(path), os.environ["STRONGBOX_PASSPHRASE"])


def step_backup(repo_path: Path, db: Path, report: Path, row_streams: bool = False) -> None:
    repo = open_repository(repo_path)
    wall, cpu = time.perf_counter(), time.process_time()
    snap = backup_sqlite(repo, db, row_streams=row_streams)
    operation = [time.perf_counter() - wall, time.process_time() - cpu]
    report.write_text(json.dumps({"snapshot": snap.id, "summary": snap.summary,
                                  "operation": operation}))


def step_backup_rows(repo_path: Path, db: Path, report: Path) -> None:
    step_backup(repo_path, db, report, row_streams=True)


def step_restore(repo_path: Path, target: Path, report: Path) -> None:
    repo = open_repository(repo_path)
    snap = repo.load_snapshot("latest")
    restore = restore_function()
    wall, cpu = time.perf_counter(), time.process_time()
    if restore is not None and _binds(restore, repo, snap, target):
        restore(repo, snap, target)
        method = "restore_sqlite"
    else:
        write_page_copy(repo, snap.id, target)
        method = "page copy written back from the repository"
    operation = [time.perf_counter() - wall, time.process_time() - cpu]
    report.write_text(json.dumps({"method": method, "operation": operation}))


def write_page_copy(repo: Repository, snapshot_id: str, target: Path) -> None:
    node = SnapshotReader(repo, repo.load_snapshot(snapshot_id)).page_copy()
    assert node is not None, "a full backup has a page copy"
    with target.open("wb") as out:
        for chunk in repo.read_stream(node.content):
            out.write(chunk)


def restore_function() -> Callable[..., Any] | None:
    """``restore_sqlite``, once the restore module exists."""
    try:
        module = importlib.import_module("strongbox.sources.sqlite.restore")
    except ImportError:
        return None
    found = getattr(module, "restore_sqlite", None)
    return found if callable(found) else None


def _binds(function: Callable[..., Any], *args: object) -> bool:
    try:
        inspect.signature(function).bind(*args)
    except TypeError:
        return False
    return True


def run_child_step(argv: list[str]) -> int:
    name, repo_path, path, report = argv
    steps = {"backup": step_backup, "backup-rows": step_backup_rows, "restore": step_restore}
    steps[name](Path(repo_path), Path(path), Path(report))
    return 0


# ---------------------------------------------------------------- one size, both tools


@dataclass
class Step:
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    ok: bool
    operation_seconds: float | None = None  # inside the process (Strongbox steps)
    runs: list[float] = field(default_factory=list)  # wall seconds of every repetition


@dataclass
class SizeResult:
    messages: int
    rows: int
    db_bytes: int
    steps: dict[str, Step] = field(default_factory=dict)  # "tool/phase" → step
    stored_bytes: dict[str, int] = field(default_factory=dict)  # tool → repository or dump
    rebackup_new_bytes: int | None = None  # raw bytes the unchanged rebackup added
    restore_method: str = ""
    verified: dict[str, str] = field(default_factory=dict)  # tool → "ok" or what is wrong

    def step(self, tool: str, phase: str) -> Step | None:
        return self.steps.get(f"{tool}/{phase}")


@dataclass(frozen=True)
class SizeRun:
    """The files of one size and how to run its steps."""

    base: Path
    repeat: int = 1

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    def path(self, name: str) -> str:
        return str(self.base / name)

    def strongbox(self, step: str, target: str, report: str, repo: str = "repo") -> list[str]:
        script = str(Path(__file__).resolve())
        return [sys.executable, script, "step", step, self.path(repo), target,
                self.path(f"logs/{report}")]


def demo_shape(messages_total: int) -> tuple[int, int, int]:
    """(projects, sessions per project, messages per session) for about this many messages."""
    per_project = MESSAGES_PER_SESSION * SESSIONS_PER_PROJECT
    if messages_total >= per_project:
        return round(messages_total / per_project), SESSIONS_PER_PROJECT, MESSAGES_PER_SESSION
    if messages_total >= MESSAGES_PER_SESSION:
        return 1, messages_total // MESSAGES_PER_SESSION, MESSAGES_PER_SESSION
    return 1, 1, max(1, messages_total)


def child_env() -> dict[str, str]:
    # Settings exported by the caller (a cheap test key cost, say) must not skew the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGBOX_")}
    return env | {"STRONGBOX_PASSPHRASE": PASSPHRASE}


def measure_step(result: SizeResult, run: SizeRun, tool: str, phase: str,
                 argv: list[str], *, before: Callable[[], None] | None = None) -> None:
    """Run a step ``run.repeat`` times (``before`` resets what it writes, each time) and
    keep the median: one run on a shared 2-core machine varies by 10-20 %."""
    print(f"  {tool:<10} {phase:<11}", end="", flush=True)
    log = run.logs / f"{tool}.log"
    report = Path(argv[-1]) if tool == "strongbox" else None
    steps: list[Step] = []
    for _ in range(run.repeat):
        if before is not None:
            before()
        os.sync()  # one step's writeback must not be billed to the next
        outcome = run_measured(argv, cwd=run.base, env=child_env(), log_path=log)
        step = Step(outcome.wall_seconds, outcome.cpu_seconds, outcome.peak_rss_bytes,
                    outcome.ok)
        if outcome.ok and report is not None and report.exists():
            step.operation_seconds = json.loads(report.read_text())["operation"][0]
        steps.append(step)
        if not step.ok:
            print(f"exit {outcome.returncode}; see {log}\n{log_tail(log)}", file=sys.stderr)
            break
    step = _median(steps)
    result.steps[f"{tool}/{phase}"] = step
    walls = " ".join(f"{s.wall_seconds:.2f}" for s in steps)
    print(f"{step.wall_seconds:8.2f} s  {step.peak_rss_bytes / MIB:7.1f} MiB  "
          f"{'ok' if step.ok else 'FAILED'}  (runs: {walls} s)")


def _median(steps: list[Step]) -> Step:
    if not all(s.ok for s in steps):
        return next(s for s in steps if not s.ok)
    by_wall = sorted(steps, key=lambda s: s.wall_seconds)
    middle = by_wall[len(by_wall) // 2]
    operations = sorted(s.operation_seconds for s in steps if s.operation_seconds is not None)
    return Step(middle.wall_seconds, middle.cpu_seconds,
                max(s.peak_rss_bytes for s in steps), True,
                operations[len(operations) // 2] if operations else None,
                [s.wall_seconds for s in steps])


def prepare(workdir: Path, messages_total: int, seed: int,
            repeat: int) -> tuple[SizeRun, dict[str, int]]:
    run = SizeRun(workdir / f"m{messages_total}", repeat)
    shutil.rmtree(run.base, ignore_errors=True)
    run.logs.mkdir(parents=True)
    print(f"\n{messages_total} messages: generating {run.path('app.db')}", flush=True)
    projects, sessions, messages = demo_shape(messages_total)
    counts = generate(Path(run.path("app.db")), projects=projects,
                      sessions_per_project=sessions, messages_per_session=messages, seed=seed)
    return run, counts


def fresh(*paths: str, repository: bool = False) -> Callable[[], None]:
    """Remove what a step writes; with ``repository``, start an empty repository there."""
    def reset() -> None:
        for path in paths:
            if Path(path).is_dir():
                shutil.rmtree(path)
            else:
                Path(path).unlink(missing_ok=True)
            if repository:
                Repository.init(LocalBackend(Path(path)), PASSPHRASE)
    return reset


def run_size(workdir: Path, messages_total: int, seed: int, repeat: int) -> SizeResult:
    run, counts = prepare(workdir, messages_total, seed, repeat)
    db, dump = run.path("app.db"), run.path("dump.sql")
    result = SizeResult(counts["messages"], sum(counts.values()), Path(db).stat().st_size)
    # Every repetition of a backup starts from an empty repository (else it would be a
    # rebackup); the last one is kept for the rebackup and restore steps.
    measure_step(result, run, "strongbox", "backup", run.strongbox("backup", db, "backup.json"),
                 before=fresh(run.path("repo"), repository=True))
    result.stored_bytes["strongbox"] = DiskUsage.of(Path(run.path("repo"))).apparent_bytes
    measure_step(result, run, "sqlite3", "backup", ["sh", "-c", DUMP_SH, "sh", db, dump])
    result.stored_bytes["sqlite3"] = Path(dump).stat().st_size if Path(dump).exists() else 0
    measure_step(result, run, "strongbox", "backup-rows",
                 run.strongbox("backup-rows", db, "backup-rows.json", repo="repo-rows"),
                 before=fresh(run.path("repo-rows"), repository=True))
    result.stored_bytes["strongbox-rows"] = DiskUsage.of(
        Path(run.path("repo-rows"))).apparent_bytes
    shutil.rmtree(run.path("repo-rows"), ignore_errors=True)
    measure_step(result, run, "strongbox", "rebackup",
                 run.strongbox("backup", db, "rebackup.json"))
    measure_step(result, run, "strongbox", "restore",
                 run.strongbox("restore", run.path("restored.db"), "restore.json"),
                 before=fresh(run.path("restored.db")))
    measure_step(result, run, "sqlite3", "restore",
                 ["sh", "-c", LOAD_SH, "sh", run.path("loaded.db"), dump],
                 before=fresh(run.path("loaded.db")))
    read_reports(result, run)
    result.verified = {"strongbox": verify(Path(run.path("restored.db")), counts),
                       "sqlite3": verify(Path(run.path("loaded.db")), counts)}
    return result


def read_reports(result: SizeResult, run: SizeRun) -> None:
    rebackup, restore = run.logs / "rebackup.json", run.logs / "restore.json"
    if rebackup.exists():
        result.rebackup_new_bytes = json.loads(rebackup.read_text())["summary"]["bytes_new_raw"]
    if restore.exists():
        result.restore_method = json.loads(restore.read_text())["method"]


def table_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        names = [n for (n,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


def verify(restored: Path, expected: dict[str, int]) -> str:
    """"ok", or what is wrong with a restored database."""
    if not restored.is_file():
        return "missing"
    conn = sqlite3.connect(restored)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    if check != "ok":
        return f"integrity_check: {check}"
    counts = table_counts(restored)
    return "ok" if counts == expected else f"row counts {counts} != {expected}"


# ---------------------------------------------------------------- reporting


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(result: SizeResult, phase: str, operation: bool = False) -> float | None:
    """Competitor time / Strongbox time for a phase (a rebackup races the same .dump);
    ``operation``: Strongbox's time inside its process (see the module docstring)."""
    ours = result.step("strongbox", phase)
    theirs = result.step("sqlite3", COMPETITOR_PHASE[phase])
    if ours is None or theirs is None or not (ours.ok and theirs.ok):
        return None
    seconds = ours.operation_seconds if operation else ours.wall_seconds
    return theirs.wall_seconds / seconds if seconds else None


def result_row(result: SizeResult, tool: str, phase: str, step: Step) -> list[str]:
    rate = result.rows / step.wall_seconds if step.ok and step.wall_seconds else None
    stored = {"backup": result.stored_bytes.get(tool),
              "backup-rows": result.stored_bytes.get(f"{tool}-rows"),
              "rebackup": result.rebackup_new_bytes}.get(phase)
    check = result.verified.get(tool, "-") if phase == "restore" else ""
    return [f"{result.messages}", phase, tool, fmt(step.wall_seconds),
            fmt(step.operation_seconds), fmt(rate, 0),
            fmt(step.cpu_seconds), fmt(step.peak_rss_bytes / MIB, 1),
            fmt(None if stored is None else stored / MIB, 1), check if step.ok else "FAILED"]


def results_table(results: list[SizeResult]) -> str:
    headers = ["messages", "phase", "tool", "time s", "op s", "rows/s", "cpu s",
               "peak RSS MiB", "stored MiB", "check"]
    rows = [result_row(result, tool, phase, step)
            for result in results for phase in PHASES for tool in TOOLS
            if (step := result.step(tool, phase)) is not None]
    return render_table(headers, rows)


def ratios_table(results: list[SizeResult]) -> str:
    rows = [[f"{r.messages}", f"{r.db_bytes / MIB:.0f}",
             *(f"{fmt(ratio(r, p, operation=True))} ({fmt(ratio(r, p))})" for p in PHASES)]
            for r in results]
    return render_table(["messages", "db MiB", "backup: dump / strongbox",
                         "backup-rows: dump / strongbox", "rebackup: dump / strongbox",
                         "restore: load / strongbox"], rows) + (
        "\n(operation ratio, and in brackets the whole-process ratio)")


def rss_table(results: list[SizeResult]) -> str:
    rows = [[f"{r.messages}", *(fmt(s.peak_rss_bytes / MIB, 1) if s else "-"
                                for p in ("backup", "restore")
                                for s in [r.step("strongbox", p)])]
            for r in results]
    return render_table(["messages", "strongbox backup peak RSS MiB",
                         "strongbox restore peak RSS MiB"], rows)


def rss_growth(results: list[SizeResult], phase: str) -> float | None:
    """Peak RSS at the largest size over the next size down."""
    steps = [r.step("strongbox", phase) for r in results[-2:]]
    if len(steps) < 2 or any(s is None or not s.ok for s in steps):
        return None
    smaller, larger = steps
    assert smaller is not None and larger is not None
    return larger.peak_rss_bytes / smaller.peak_rss_bytes


def verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def targets_table(results: list[SizeResult], main: SizeResult) -> str:
    backup = ratio(main, "backup", operation=True)
    growth = [rss_growth(results, phase) for phase in ("backup", "restore")]
    known = [g for g in growth if g is not None]
    sizes = " → ".join(str(r.messages) for r in results[-2:])
    rows = [
        [f"backup >= {BACKUP_TARGET:g}x faster than .dump ({main.messages} messages, "
         "operation)", fmt(backup), verdict(None if backup is None else backup >= BACKUP_TARGET)],
        ["  the same, whole process (Python start-up and key derivation included)",
         fmt(ratio(main, "backup")), "info"],
        [f"peak RSS growth {sizes} <= {RSS_GROWTH_LIMIT:g} (backup / restore)",
         " / ".join(fmt(g) for g in growth),
         verdict(all(g <= RSS_GROWTH_LIMIT for g in known) if known else None)],
        ["restores intact (integrity_check, row counts)", "",
         verdict(all(v == "ok" for r in results for v in r.verified.values()))],
    ]
    return render_table(["target (strongbox)", "value", "verdict"], rows)


def report(results: list[SizeResult], main: SizeResult, json_path: Path | None) -> None:
    methods = sorted({r.restore_method for r in results if r.restore_method})
    print(f"\nsqlite3 CLI {shutil.which('sqlite3')}; Python's SQLite {sqlite3.sqlite_version}")
    print(f"strongbox restore: {', '.join(methods) or '-'}\n")
    print(results_table(results), ratios_table(results), rss_table(results),
          targets_table(results, main), sep="\n\n", end="\n\n")
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
        print(f"results written to {json_path}")


# ---------------------------------------------------------------- CLI


def parse_sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip() and int(part) > 0]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages-total", type=int, default=1_000_000,
                        help="messages in the main database (default 1000000: 200 projects "
                             "x 50 sessions x 100 messages)")
    parser.add_argument("--rss-sizes", type=parse_sizes, default=[100_000],
                        help="more sizes, comma-separated, run the same way so peak RSS "
                             "can be compared across sizes (default 100000; '' for none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each step; the median is reported (default 3)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep databases, dump, repositories")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["step"]:
        return run_child_step(argv[1:])
    args = parse_args(argv)
    if shutil.which("sqlite3") is None:
        print("the sqlite3 command is missing: apt-get install -y sqlite3", file=sys.stderr)
        return 2
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep progress in order with stderr
    workdir = args.workdir.resolve()
    sizes = sorted({args.messages_total, *args.rss_sizes})
    results = [run_size(workdir, size, args.seed, max(1, args.repeat)) for size in sizes]
    report(results, results[sizes.index(args.messages_total)], args.json)
    if not args.keep:
        for size in sizes:
            shutil.rmtree(workdir / f"m{size}", ignore_errors=True)
    steps_ok = all(s.ok for r in results for s in r.steps.values())
    restores_ok = all(v == "ok" for r in results for v in r.verified.values())
    return 0 if steps_ok and restores_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
