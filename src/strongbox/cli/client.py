"""The CLI's way to a running server: ``strongbox schedules|cleanup|verify|dr|...`` call the
REST API with an API key, so they see exactly what the web page and scripts see.

The server address and key come from ``--server``/``--api-key`` or the environment
(``STRONGBOX_URL``, ``STRONGBOX_API_KEY``). An error answer of the server (the seed 000
envelope) becomes one line on stderr and exit code 1; an unreachable server exit code 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import typer

from strongbox.cli.console import err, out, print_json

EXIT_API_ERROR = 1
EXIT_UNREACHABLE = 2
DEFAULT_URL = "http://127.0.0.1:8000"

ServerOption = typer.Option(DEFAULT_URL, "--server", envvar="STRONGBOX_URL",
                            help="Base URL of the Strongbox server.")
ApiKeyOption = typer.Option(..., "--api-key", envvar="STRONGBOX_API_KEY",
                            help="API key (or set STRONGBOX_API_KEY).")
JsonOption = typer.Option(False, "--json", help="Print the server's JSON answer.")


class ApiClient:
    """A thin httpx wrapper: JSON in, JSON out, errors as one clear line."""

    def __init__(self, server: str, api_key: str, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=server.rstrip("/"), timeout=timeout,
                                  headers={"X-API-Key": api_key}, transport=transport)

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            err.print(f"[bold red]error:[/] cannot reach the server at {self._http.base_url}: "
                      f"{exc}", highlight=False)
            raise typer.Exit(EXIT_UNREACHABLE) from None
        if response.status_code >= 400:
            err.print(f"[bold red]error:[/] {_error_line(response)}", highlight=False)
            raise typer.Exit(EXIT_API_ERROR)
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items()
                                                 if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, json=body)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_line(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body["error"]
        line = f"{error['code']}: {error['message']}"
        for item in body.get("validation_errors") or []:
            line += f"; {item.get('field')}: {item.get('message')}"
        return f"{line} (HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def show(data: Any, as_json: bool, summary: str | None = None) -> None:
    """Print the answer as JSON (for scripts) or a short human line."""
    if as_json or summary is None:
        print_json(data)
    else:
        out.print(summary, highlight=False)


POLL_SECONDS = 0.5
FINISHED = ("completed", "failed")


def poll(client: ApiClient, path: str, timeout: float, *, done: tuple[str, ...] = FINISHED,
         progress_of: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
         interval: float = POLL_SECONDS) -> dict[str, Any] | None:
    """GET ``path`` until its ``status`` is one of ``done``; the last answer, or None when
    ``timeout`` seconds passed first (the caller says so in its own words). With
    ``progress_of``, each new "percentage  operation" line of the progress is printed."""
    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        body: dict[str, Any] = client.get(path)
        if body["status"] in done:
            return body
        if progress_of is not None:
            progress = progress_of(body) or {}
            line = (f"{progress.get('percentage', 0):5.1f}%  "
                    f"{progress.get('current_operation', '')}")
            if line != shown:
                out.print(line, highlight=False)
                shown = line
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)
