"""The job machinery on its own: runner, thread executor, progress persistence, events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.catalog.database import Catalog
from strongbox.errors import SourceError
from strongbox.jobs.events import EventBus, JobEvent
from strongbox.jobs.executor import ThreadJobExecutor
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.runner import JobRunner
from strongbox.jobs.store import INTERRUPTED, JobStore, JobView


class SlowHandler:
    """Advances a step at a time until told to finish; fails on request."""

    steps = ("first", "second")

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.failures: list[tuple[str, dict[str, Any]]] = []

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        progress.step("first")
        progress.expect(1000)
        self.started.set()
        while not self.release.is_set():
            progress.check_cancelled()
            progress.advance(items=1, nbytes=10)
            time.sleep(0.01)
        if job.params.get("fail"):
            raise SourceError("the source went away")
        progress.step("second")
        return {"answer": 42}

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        self.failures.append((job.id, error))


@pytest.fixture()
def machinery(tmp_path: Path) -> Iterator[tuple[JobStore, EventBus, JobRunner, SlowHandler]]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    store, bus = JobStore(catalog), EventBus()
    runner = JobRunner(store, bus, interval=0.02)
    handler = SlowHandler()
    runner.register("slow", handler)
    yield store, bus, runner, handler
    catalog.dispose()


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_progress_is_persisted_published_and_completed(machinery: Any) -> None:
    store, bus, runner, handler = machinery
    runner.interval = 0.1
    executor = ThreadJobExecutor(runner, 1)
    job = store.create("t", "slow", {})
    events: list[JobEvent] = []
    bus.subscribe(job.id, events.append)
    executor.submit(job)
    assert handler.started.wait(10)
    wait_until(lambda: store.get(job.id).progress.get("documents_processed", 0) >= 40)
    running = store.get(job.id)
    assert running.status == "in_progress"
    assert running.progress["current_step"] == "first"
    assert 0 < running.progress["percentage"] < 50
    handler.release.set()
    wait_until(lambda: store.get(job.id).status == "completed")
    done = store.get(job.id)
    assert done.result == {"answer": 42}
    assert done.progress["percentage"] == 100
    assert done.progress["completed_steps"] == 2
    assert events[-1].type == "completed"
    assert all(e.type == "progress" for e in events[:-1])
    # Throttled: far fewer events than advances.
    assert len(events) < done.progress["documents_processed"] / 2
    executor.shutdown()


def test_errors_become_the_jobs_error(machinery: Any) -> None:
    store, _bus, runner, handler = machinery
    job = store.create("t", "slow", {"fail": True})
    handler.release.set()
    final = runner.run(job.id)
    assert final is not None and final.status == "failed"
    assert final.error == {"code": "SOURCE_ERROR", "message": "the source went away"}
    assert handler.failures == [(job.id, final.error)]


def test_cancel_a_running_and_a_queued_job(machinery: Any) -> None:
    store, _bus, runner, handler = machinery
    executor = ThreadJobExecutor(runner, 1)
    running, queued = store.create("t", "slow", {}), store.create("t", "slow", {})
    executor.submit(running)
    executor.submit(queued)
    assert handler.started.wait(10)
    assert executor.cancel(queued.id)
    assert executor.cancel(running.id)
    wait_until(lambda: store.get(running.id).status == "cancelled")
    assert store.get(queued.id).status == "cancelled"
    assert store.get(running.id).error["code"] == "CANCELLED"
    assert {job_id for job_id, _ in handler.failures} == {running.id, queued.id}
    assert not executor.cancel("no-such-job")
    executor.shutdown()


def test_shutdown_interrupts_and_a_restart_fails_what_was_left(machinery: Any) -> None:
    store, _bus, runner, handler = machinery
    executor = ThreadJobExecutor(runner, 1)
    running, queued = store.create("t", "slow", {}), store.create("t", "slow", {})
    executor.submit(running)
    executor.submit(queued)
    assert handler.started.wait(10)
    executor.shutdown()
    stopped = store.get(running.id)
    assert stopped.status == "failed" and stopped.error["code"] == INTERRUPTED
    assert store.get(queued.id).status == "pending"
    # The next server start:
    recovered = ThreadJobExecutor(runner, 1).start()
    assert [job.id for job in recovered] == [queued.id]
    failed = store.get(queued.id)
    assert failed.status == "failed" and failed.error["code"] == INTERRUPTED
    assert "restarted" in failed.error["message"]
