"""A cancel asked through the catalog reaches a job that no local executor holds (another
process, or a job run inline by another job)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from strongbox.catalog.database import Catalog
from strongbox.jobs.events import EventBus
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.runner import JobRunner
from strongbox.jobs.store import JobStore, JobView


class Spinning:
    """Works in small units until cancelled (at most 30 s)."""

    steps = ("spin",)

    def __init__(self) -> None:
        self.started = threading.Event()

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        self.started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            progress.advance(items=1)
            progress.check_cancelled()
            time.sleep(0.005)
        return {"spun": "to the end"}

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        pass


def test_a_cancel_in_the_catalog_stops_a_job_run_inline(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    store = JobStore(catalog)
    runner = JobRunner(store, EventBus(), interval=0.02)
    handler = Spinning()
    runner.register("spin", handler)
    job = store.create("t", "spin", {})
    ended: list[JobView | None] = []
    worker = threading.Thread(target=lambda: ended.append(runner.run(job.id)))
    worker.start()
    assert handler.started.wait(10)
    store.request_cancel(job.id)  # what POST /api/v1/jobs/{id}/cancel does
    worker.join(20)
    assert not worker.is_alive()
    final = ended[0]
    assert final is not None and final.status == "cancelled"
    assert final.error is not None and final.error["code"] == "CANCELLED"
    catalog.dispose()
