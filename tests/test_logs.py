"""Structured logs: one JSON object a line (or text), with the request and job ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.concurrency import run_in_threadpool

from strongbox.catalog.database import Catalog
from strongbox.jobs.events import EventBus
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.runner import JobRunner
from strongbox.jobs.store import JobStore, JobView
from strongbox.logs import (
    configure_logging,
    job_context,
    request_context,
    request_id_var,
    resolve_format,
)


@pytest.fixture()
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_request_and_job_ids(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    log = logging.getLogger("strongbox.test")
    with request_context("req-42"):
        log.info("serving %s", "it", extra={"route": "/api/v1/x"})
        with job_context("job-7"):
            log.warning("inside a job")
    log.info("outside")
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "serving it" and first["request_id"] == "req-42"
    assert first["level"] == "INFO" and first["logger"] == "strongbox.test"
    assert first["route"] == "/api/v1/x" and first["job_id"] is None
    assert first["timestamp"].endswith("+00:00")
    assert (second["request_id"], second["job_id"], second["level"]) == (
        "req-42", "job-7", "WARNING")
    assert third["request_id"] is None and third["job_id"] is None


def test_text_lines_name_the_ids_when_there_are_some(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("text", "DEBUG", stream=stream)
    log = logging.getLogger("strongbox.test")
    with request_context("req-9"):
        log.debug("hello")
    log.info("plain")
    lines = stream.getvalue().splitlines()
    assert "strongbox.test [request_id=req-9]: hello" in lines[0]
    assert lines[1].endswith("strongbox.test: plain")


def test_configuring_again_replaces_the_handler(restore_root: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", stream=first)
    configure_logging("json", stream=second)
    logging.getLogger("strongbox.test").warning("once")
    assert first.getvalue() == "" and len(second.getvalue().splitlines()) == 1


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", Terminal()) == "json"
    with pytest.raises(ValueError):
        resolve_format("xml")


def test_the_request_id_follows_sync_routes_into_the_thread_pool() -> None:
    async def serve() -> str | None:
        token = request_id_var.set("req-pool")
        try:
            return await run_in_threadpool(request_id_var.get)
        finally:
            request_id_var.reset(token)

    assert asyncio.run(serve()) == "req-pool"


def test_every_job_logs_with_its_job_id(restore_root: None, tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    store = JobStore(catalog)
    runner = JobRunner(store, EventBus())

    class Talking:
        steps = ("talk",)

        def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
            logging.getLogger("strongbox.test").info("working")
            return {}

        def failed(self, job: JobView, error: dict[str, Any]) -> None:
            pass

    runner.register("talk", Talking())
    job = store.create("t", "talk", {})
    runner.run(job.id)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["job_id"] for line in lines if line["message"] == "working"] == [job.id]
    catalog.dispose()
