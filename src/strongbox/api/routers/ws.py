"""``/ws/backups/{job_id}`` and ``/ws/restore/{job_id}``: a job's events as they happen
(seed 000 section 7).

Authenticated like the REST API (``X-API-Key`` or ``Authorization: Bearer`` header, or
the ``api_key`` query parameter, since browsers cannot set headers on a WebSocket). A
client that connects late first gets the job's current state; the socket closes after
the final event (``*.completed`` or ``*.failed``). Refusals are HTTP responses with the error
envelope where the server supports it, else a close with code 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from strongbox.api.deps import authenticate, token_from
from strongbox.api.errors import error_body
from strongbox.api.events import backup_message, event_from_job, restore_message
from strongbox.errors import StrongboxError
from strongbox.jobs.events import JobEvent
from strongbox.jobs.store import JobView
from strongbox.services.container import Services

router = APIRouter(tags=["events"])


async def _refuse(websocket: WebSocket, exc: StrongboxError) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = error_body(websocket, exc.code, exc.message)
        await websocket.send_denial_response(JSONResponse(body, status_code=exc.http_status))
    else:
        await websocket.close(code=1008, reason=exc.code)


@router.websocket("/ws/backups/{job_id}")
async def backup_events(websocket: WebSocket, job_id: str) -> None:
    services: Services = websocket.app.state.services
    await _follow(websocket, job_id, services.backups.job, backup_message)


@router.websocket("/ws/restore/{job_id}")
async def restore_events(websocket: WebSocket, job_id: str) -> None:
    services: Services = websocket.app.state.services
    await _follow(websocket, job_id, services.restores.job, restore_message)


async def _follow(websocket: WebSocket, job_id: str, load: Callable[[str, str], JobView],
                  message: Callable[[JobEvent], dict[str, Any]]) -> None:
    """Send the job's current state, then its events until the final one."""
    services: Services = websocket.app.state.services
    token = websocket.query_params.get("api_key") or token_from(
        websocket.headers.get("x-api-key"), websocket.headers.get("authorization"))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[JobEvent] = asyncio.Queue()

    def deliver(event: JobEvent) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, event)

    # Subscribe before reading the state, so no event falls between the two.
    unsubscribe = services.bus.subscribe(job_id, deliver)
    try:
        try:
            principal = await run_in_threadpool(authenticate, services, token)
            job = await run_in_threadpool(load, principal.tenant, job_id)
        except StrongboxError as exc:
            await _refuse(websocket, exc)
            return
        await websocket.accept()
        current = event_from_job(job)
        await websocket.send_json(message(current))
        if current.final or await _stream(websocket, queue, message):
            await websocket.close()
    except WebSocketDisconnect:
        pass
    finally:
        unsubscribe()


async def _stream(websocket: WebSocket, queue: asyncio.Queue[JobEvent],
                  message: Callable[[JobEvent], dict[str, Any]]) -> bool:
    """Forward events until the final one (True), or until the client goes away."""
    disconnected = asyncio.ensure_future(_wait_for_disconnect(websocket))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, disconnected},
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return False
            event = getter.result()
            await websocket.send_json(message(event))
            if event.final:
                return True
    finally:
        disconnected.cancel()


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
