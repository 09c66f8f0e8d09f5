"""What the CLI shows a person: progress bars, tables, JSON, and one-line errors."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress

from strongbox.errors import (
    RepositoryLocked,
    RepositoryNotFound,
    StrongboxError,
    WrongPassphrase,
)
from strongbox.progress import Progress

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # one error, one line: never hard-wrap

# Exit codes scripts can rely on (documented in docs/cli.md).
EXIT_ERROR = 1
EXIT_NO_REPOSITORY = 10
EXIT_LOCKED = 11
EXIT_WRONG_PASSPHRASE = 12

T = TypeVar("T")


def exit_code_for(exc: StrongboxError) -> int:
    if isinstance(exc, RepositoryNotFound):
        return EXIT_NO_REPOSITORY
    if isinstance(exc, RepositoryLocked):
        return EXIT_LOCKED
    if isinstance(exc, WrongPassphrase):
        return EXIT_WRONG_PASSPHRASE
    return EXIT_ERROR


def run(action: Callable[[], T]) -> T:
    """Run a command body, turning Strongbox errors into one clear line and an exit code."""
    try:
        return action()
    except StrongboxError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(exit_code_for(exc)) from None
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]: nothing was committed by the unfinished step")
        raise typer.Exit(130) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


class BarProgress(Progress):
    """Renders the shared progress interface as a rich progress bar (files, bytes, rate, ETA)."""

    def __init__(self, bar: RichProgress, task: TaskID) -> None:
        super().__init__()
        self._bar = bar
        self._task = task
        self._last = 0.0

    def changed(self) -> None:
        now = time.monotonic()
        if now - self._last < 0.1:
            return  # redrawing on every chunk would cost more than the work
        self._last = now
        s = self.state
        self._bar.update(self._task, description=s.operation, completed=s.bytes_done,
                         total=s.bytes_total, files=s.items_done)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    """A progress sink: a live bar on a terminal, silent for --json or pipes."""
    if not enabled or not err.is_terminal:
        yield Progress()
        return
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.fields[files]} files"), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with RichProgress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("starting", total=None, files=0)
        yield BarProgress(bar, task)
