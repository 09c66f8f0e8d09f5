"""File-backup benchmark: Strongbox against restic and borg on one generated dataset.

    python bench/files_bench.py --size-mib 2048 --tools strongbox,restic,borg --json out.json

Every tool goes through the same phases on the same bytes: repo init, first backup,
no-change backup, backup after a mutation, full restore of the latest snapshot. Phases
run tool after tool, so each sees the identical tree (including inodes and mtimes).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dataset
from measure import DiskUsage, log_tail, run_measured
from tools import TOOL_CLASSES, Command, Tool, locate_restored_root
from treecheck import Manifest, manifest_differences, tree_manifest

MIB = 1024 * 1024
MB = 1000 * 1000
BACKUP_PHASES = ("backup-first", "backup-nochange", "backup-mutated")
PHASES = ("init", *BACKUP_PHASES, "restore")
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "work"
WORK_SUBDIRS = ("data", "repos", "restore", "home", "logs")


@dataclass
class PhaseResult:
    tool: str
    phase: str
    status: str  # ok | failed | skipped | mismatch
    data_bytes: int = 0
    wall_seconds: float | None = None
    cpu_seconds: float | None = None
    peak_rss_bytes: int | None = None
    repo_bytes: int | None = None  # allocated on disk, as `du` counts
    repo_apparent_bytes: int | None = None
    detail: str = ""

    @property
    def mib_per_second(self) -> float | None:
        if not self.wall_seconds or not self.data_bytes or self.status != "ok":
            return None
        return self.data_bytes / MIB / self.wall_seconds


@dataclass
class Bench:
    workdir: Path
    tools: list[Tool]
    results: dict[tuple[str, str], PhaseResult] = field(default_factory=dict)
    dataset_info: dict[str, object] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def broken(self, tool: Tool) -> bool:
        return any(r.status != "ok" for (name, _), r in self.results.items() if name == tool.name)

    def result(self, tool: str, phase: str) -> PhaseResult | None:
        return self.results.get((tool, phase))


# ---------------------------------------------------------------- running phases


def prepare_workdir(workdir: Path) -> None:
    """Clear what an earlier run left; only the subdirectories this benchmark owns."""
    for name in WORK_SUBDIRS:
        shutil.rmtree(workdir / name, ignore_errors=True)
    for name in ("repos", "restore", "home", "logs"):
        (workdir / name).mkdir(parents=True)


def run_step(bench: Bench, tool: Tool, phase: str, command: Command, data_bytes: int) -> None:
    log_path = bench.workdir / "logs" / f"{tool.name}.log"
    os.sync()  # earlier phases' writeback must not be billed to this one
    print(f"  {tool.name:<10} {phase:<16}", end="", flush=True)
    measured = run_measured(command.argv, cwd=command.cwd, env=tool.env(), log_path=log_path)
    result = PhaseResult(
        tool=tool.name,
        phase=phase,
        status="ok" if measured.ok else "failed",
        data_bytes=data_bytes,
        wall_seconds=measured.wall_seconds,
        cpu_seconds=measured.cpu_seconds,
        peak_rss_bytes=measured.peak_rss_bytes,
    )
    if phase != "restore":
        usage = DiskUsage.of(tool.repo)
        result.repo_bytes, result.repo_apparent_bytes = usage.allocated_bytes, usage.apparent_bytes
    if not measured.ok:
        result.detail = f"exit {measured.returncode}; see {log_path}\n{log_tail(log_path)}"
    print(f"{measured.wall_seconds:8.2f} s  {result.status}")
    if not measured.ok:
        print(indent(result.detail), file=sys.stderr)
    bench.results[(tool.name, phase)] = result


def run_phase(
    bench: Bench, phase: str, command_for: Callable[[Tool], Command], data_bytes: int
) -> None:
    print(f"{phase}:")
    for tool in bench.tools:
        if bench.broken(tool):
            bench.results[(tool.name, phase)] = PhaseResult(tool.name, phase, "skipped")
            continue
        try:
            command = command_for(tool)
        except (RuntimeError, OSError) as error:
            bench.results[(tool.name, phase)] = PhaseResult(
                tool.name, phase, "failed", detail=str(error)
            )
            print(f"  {tool.name:<10} {phase:<16} failed: {error}", file=sys.stderr)
            continue
        run_step(bench, tool, phase, command, data_bytes)


def verify_restore(bench: Bench, tool: Tool, expected: Manifest) -> None:
    result = bench.result(tool.name, "restore")
    if result is None or result.status != "ok":
        return
    target = bench.workdir / "restore" / tool.name
    root = locate_restored_root(target, bench.data)
    if root is None:
        problems = [f"dataset not found below {target}"]
    else:
        problems = manifest_differences(expected, tree_manifest(root))
    if problems:
        result.status = "mismatch"
        result.detail = f"{len(problems)} differences:\n" + "\n".join(problems[:20])
        banner = "!" * 72
        print(
            f"\n{banner}\n!!! RESTORE MISMATCH: {tool.name} did not restore the dataset",
            file=sys.stderr,
        )
        print(f"{indent(result.detail)}\n{banner}\n", file=sys.stderr)
    else:
        print(f"  {tool.name:<10} restore verified: {len(expected)} entries identical")


def generate_dataset(bench: Bench, size_mib: int, seed: int) -> int:
    """Write the dataset; returns its size in bytes."""
    started = time.perf_counter()
    plan = dataset.generate(bench.data, size_mib, seed)
    elapsed = time.perf_counter() - started
    print(f"dataset: {dataset.describe_plan(plan)}; generated in {elapsed:.1f} s")
    data_bytes = dataset.tree_bytes(bench.data)
    bench.dataset_info = {
        "size_mib_requested": size_mib,
        "seed": seed,
        "bytes": data_bytes,
        "files": len(plan.files) + len(plan.copies),
        "symlinks": len(plan.symlinks),
        "empty_dirs": len(plan.empty_dirs),
    }
    return data_bytes


def mutate_dataset(bench: Bench, seed: int) -> int:
    """Mutate the dataset in place; returns its new size in bytes."""
    report = dataset.mutate(bench.data, seed)
    print(f"mutation: {dataset.describe_mutation(report)}")
    mutated_bytes = dataset.tree_bytes(bench.data)
    bench.dataset_info["mutation"] = {
        "seed": seed,
        "rewritten": len(report.rewritten),
        "appended": len(report.appended),
        "added": len(report.added),
        "deleted": len(report.deleted),
        "bytes_after": mutated_bytes,
    }
    return mutated_bytes


def restore_and_verify(bench: Bench, data_bytes: int, keep_restores: bool) -> None:
    targets = bench.workdir / "restore"
    run_phase(bench, "restore", lambda tool: tool.restore(targets / tool.name), data_bytes)
    expected = tree_manifest(bench.data)
    for tool in bench.tools:
        verify_restore(bench, tool, expected)
        if not keep_restores:
            shutil.rmtree(targets / tool.name, ignore_errors=True)


def backup_labelled(bench: Bench, label: str) -> Callable[[Tool], Command]:
    return lambda tool: tool.backup(bench.data, label)


def run_bench(bench: Bench, size_mib: int, seed: int, keep_restores: bool) -> None:
    data_bytes = generate_dataset(bench, size_mib, seed)
    run_phase(bench, "init", lambda tool: tool.init(), 0)
    run_phase(bench, "backup-first", backup_labelled(bench, "first"), data_bytes)
    run_phase(bench, "backup-nochange", backup_labelled(bench, "nochange"), data_bytes)
    data_bytes = mutate_dataset(bench, seed + 1)
    run_phase(bench, "backup-mutated", backup_labelled(bench, "mutated"), data_bytes)
    restore_and_verify(bench, data_bytes, keep_restores)


# ---------------------------------------------------------------- ratios and targets


def time_ratio(bench: Bench, phase: str, competitor: str) -> float | None:
    """competitor time / strongbox time: above 1 means Strongbox is faster."""
    ours, theirs = bench.result("strongbox", phase), bench.result(competitor, phase)
    if not ours or not theirs or ours.status != "ok" or theirs.status != "ok":
        return None
    if not ours.wall_seconds or theirs.wall_seconds is None:
        return None
    return theirs.wall_seconds / ours.wall_seconds


def size_ratio(bench: Bench, phase: str, competitor: str) -> float | None:
    """strongbox repo size / competitor repo size: below 1 means Strongbox is smaller."""
    ours, theirs = bench.result("strongbox", phase), bench.result(competitor, phase)
    if not ours or not theirs or not ours.repo_bytes or not theirs.repo_bytes:
        return None
    if ours.status != "ok" or theirs.status != "ok":
        return None
    return ours.repo_bytes / theirs.repo_bytes


def peak_rss(bench: Bench, tool: str) -> int | None:
    """Highest peak RSS over the phases that ran to completion."""
    completed = [bench.result(tool, phase) for phase in PHASES]
    peaks = [
        r.peak_rss_bytes
        for r in completed
        if r is not None and r.status in ("ok", "mismatch") and r.peak_rss_bytes is not None
    ]
    return max(peaks) if peaks else None


def rss_ratio(bench: Bench, competitor: str) -> float | None:
    ours, theirs = peak_rss(bench, "strongbox"), peak_rss(bench, competitor)
    return ours / theirs if ours and theirs else None


def compute_ratios(bench: Bench) -> dict[str, dict[str, float | None]]:
    competitors = [tool.name for tool in bench.tools if tool.name != "strongbox"]
    ratios: dict[str, dict[str, float | None]] = {}
    for competitor in competitors:
        row: dict[str, float | None] = {}
        for phase in PHASES:
            row[f"time {phase}"] = time_ratio(bench, phase, competitor)
        row["repo size after first backup"] = size_ratio(bench, "backup-first", competitor)
        row["repo size after all backups"] = size_ratio(bench, "backup-mutated", competitor)
        row["peak RSS"] = rss_ratio(bench, competitor)
        ratios[competitor] = row
    return ratios


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    passed: bool | None  # None: not measurable in this run


def check_targets(bench: Bench) -> list[Target]:
    def at_least_one(name: str, value: float | None) -> Target:
        return Target(name, value, None if value is None else value >= 1.0)

    size = size_ratio(bench, "backup-mutated", "restic")
    rss = peak_rss(bench, "strongbox")
    restore = bench.result("strongbox", "restore")
    identical = None if restore is None or restore.status == "skipped" else restore.status == "ok"
    return [
        at_least_one(
            "first backup throughput >= restic", time_ratio(bench, "backup-first", "restic")
        ),
        at_least_one(
            "no-change backup no slower than restic", time_ratio(bench, "backup-nochange", "restic")
        ),
        at_least_one("restore throughput >= restic", time_ratio(bench, "restore", "restic")),
        Target("repo size within 5% of restic", size, None if size is None else size <= 1.05),
        Target(
            "peak RSS < 400 MB",
            None if rss is None else rss / MB,
            None if rss is None else rss < 400 * MB,
        ),
        Target("restore byte-identical", None, identical),
    ]


# ---------------------------------------------------------------- reporting


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(
            cell.rjust(width) if i else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def number(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def results_table(bench: Bench) -> str:
    headers = ["phase", "tool", "time s", "MiB/s", "cpu s", "peak RSS MiB", "repo MiB", "status"]
    rows: list[list[str]] = []
    for phase in PHASES:
        for tool in bench.tools:
            result = bench.result(tool.name, phase)
            if result is None:
                continue
            rows.append(
                [
                    phase,
                    tool.name,
                    number(result.wall_seconds),
                    number(result.mib_per_second, 1),
                    number(result.cpu_seconds),
                    number(
                        None if result.peak_rss_bytes is None else result.peak_rss_bytes / MIB, 1
                    ),
                    number(None if result.repo_bytes is None else result.repo_bytes / MIB, 1),
                    result.status,
                ]
            )
    return render_table(headers, rows)


def ratios_table(bench: Bench, ratios: dict[str, dict[str, float | None]]) -> str:
    competitors = list(ratios)
    if not competitors or bench.result("strongbox", "init") is None:
        return "(ratios need strongbox and at least one competitor in --tools)"
    headers = ["ratio", *[f"vs {name}" for name in competitors]]
    names = list(ratios[competitors[0]])
    rows = [[name, *[number(ratios[c][name], 2, "x") for c in competitors]] for name in names]
    notes = (
        "time: competitor time / strongbox time (>1 = strongbox faster); "
        "size and RSS: strongbox / competitor (<1 = strongbox smaller)"
    )
    return f"{render_table(headers, rows)}\n{notes}"


def targets_table(targets: list[Target]) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    rows = [[t.name, number(t.value, 2), verdict[t.passed]] for t in targets]
    return render_table(["target (strongbox)", "value", "verdict"], rows)


def write_json(
    path: Path, bench: Bench, ratios: dict[str, dict[str, float | None]], targets: list[Target]
) -> None:
    document = {
        "dataset": bench.dataset_info,
        "results": [
            asdict(r) | {"mib_per_second": r.mib_per_second} for r in bench.results.values()
        ],
        "ratios": ratios,
        "targets": [asdict(t) for t in targets],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# ---------------------------------------------------------------- CLI


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048, help="dataset size (default 2048)")
    parser.add_argument(
        "--seed", type=int, default=1, help="dataset seed; the mutation uses seed+1"
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--tools", default="strongbox,restic,borg", help="comma-separated")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-restores", action="store_true", help="keep restored trees")
    args = parser.parse_args(argv)
    args.tools = [name.strip() for name in args.tools.split(",") if name.strip()]
    unknown = sorted(set(args.tools) - TOOL_CLASSES.keys())
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {sorted(TOOL_CLASSES)}")
    return args


def build_tools(names: list[str], workdir: Path) -> list[Tool]:
    tools: list[Tool] = []
    for name in names:
        tool = TOOL_CLASSES[name](workdir / "repos" / name, workdir / "home" / name)
        if tool.executable() is None:
            print(
                f"{name}: not installed, skipped (apt-get install -y restic borgbackup)",
                file=sys.stderr,
            )
            continue
        tool.home.mkdir(parents=True, exist_ok=True)
        tools.append(tool)
    return tools


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep progress in order with stderr
    workdir = args.workdir.resolve()
    prepare_workdir(workdir)
    bench = Bench(workdir, build_tools(args.tools, workdir))
    run_bench(bench, args.size_mib, args.seed, args.keep_restores)
    ratios = compute_ratios(bench)
    targets = check_targets(bench)
    print(f"\n{results_table(bench)}\n\n{ratios_table(bench, ratios)}\n")
    if any(tool.name == "strongbox" for tool in bench.tools):
        print(f"{targets_table(targets)}\n")
    if args.json:
        write_json(args.json, bench, ratios, targets)
        print(f"results written to {args.json}")
    return 0 if all(r.status == "ok" for r in bench.results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
