"""Executors decide where jobs run. Services only ever call :class:`JobExecutor`.

:class:`ThreadJobExecutor` runs jobs on a thread pool inside the server: one command, no
extra servers. A Celery executor would implement the same two methods with a task that
calls :meth:`JobRunner.run` in a worker, and cancel by setting the job's
``cancel_requested`` flag, which its progress polls.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from strongbox.jobs.progress import JobProgress
from strongbox.jobs.runner import SHUTDOWN, JobRunner
from strongbox.jobs.store import JobView

log = logging.getLogger(__name__)


class JobExecutor(Protocol):
    def submit(self, job: JobView) -> None:
        """Queue a pending job to run."""

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop; True if this executor knew the job."""


class ThreadJobExecutor:
    def __init__(self, runner: JobRunner, workers: int = 2) -> None:
        self.runner = runner
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="job")
        self._jobs: dict[str, tuple[Future[object], JobProgress]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> list[JobView]:
        """Jobs a previous server left running cannot be resumed in this process: they
        are failed with a clear error (a Celery executor would not do this)."""
        return self.runner.recover_interrupted()

    def submit(self, job: JobView) -> None:
        progress = self.runner.new_progress(job)
        with self._lock:
            if self._closed:
                raise RuntimeError("the job executor is shut down")
            future = self._pool.submit(self._run, job.id, progress)
            self._jobs[job.id] = (future, progress)
        future.add_done_callback(lambda _f: self._forget(job.id))

    def _run(self, job_id: str, progress: JobProgress) -> object:
        try:
            return self.runner.run(job_id, progress)
        except Exception:
            log.exception("job %s crashed the runner", job_id)
            raise

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            entry = self._jobs.get(job_id)
        if entry is None:
            return False
        future, progress = entry
        progress.cancel()
        if future.cancel():  # never started: nobody else will record the end
            self.runner.cancel_pending(job_id)
        return True

    def running(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop: running jobs are cancelled at their next safe point and recorded as
        interrupted; queued ones stay pending and are failed at the next start."""
        with self._lock:
            self._closed = True
            entries = list(self._jobs.values())
        for _future, progress in entries:
            progress.cancel(SHUTDOWN)
        self._pool.shutdown(wait=wait, cancel_futures=True)
