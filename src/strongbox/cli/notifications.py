"""``strongbox notifications ...``: webhooks and the delivery log of a running server, over
HTTP (docs/notifications.md).

Exit codes: 0 done; 1 an API error; 2 server unreachable; 4 a test ping was not delivered.
"""

from __future__ import annotations

from typing import Any

import typer

from strongbox.cli.client import ApiClient, ApiKeyOption, JsonOption, ServerOption, show
from strongbox.cli.console import out, print_json

EXIT_NOT_DELIVERED = 4
BASE = "/api/v1/notifications"

app = typer.Typer(help="Notifications: webhooks (signed with HMAC-SHA256) and the log of "
                       "every delivery.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Add, list, change, test and remove webhooks.",
                           no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")

EventOption = typer.Option([], "--event", "-e",
                           help="An event to send (repeatable; default: all seven).")


def _hook_line(hook: dict[str, Any]) -> str:
    state = "enabled " if hook["enabled"] else "disabled"
    return (f"{hook['_id']}  {state}  {hook['name']}  {hook['url']}  "
            f"[{', '.join(hook['events'])}]  secret {hook['secret']}")


def _delivery_line(item: dict[str, Any]) -> str:
    code = item.get("last_status_code")
    detail = f"HTTP {code}" if code and item["channel"] == "webhook" else (code or "")
    error = f"  {item['last_error']}" if item.get("last_error") else ""
    return (f"{item['_id']}  {item['created_at'][:19]}  {item['status']:<9} "
            f"{item['event']:<17} {item['channel']:<7} tries {item['attempts']}  "
            f"{item['target']}  {detail}{error}").rstrip()


def _with(server: str, api_key: str, call: Any) -> Any:
    with ApiClient(server, api_key) as client:
        return call(client)


@webhooks_app.command("add")
def add(url: str = typer.Argument(..., help="Where to POST events (http:// or https://)."),
        name: str | None = typer.Option(None, "--name", "-n", help="Default: the URL's host."),
        event: list[str] = EventOption,
        secret: str | None = typer.Option(None, "--secret",
                                          help="Signing secret (16-64 characters); "
                                               "default: generated."),
        disabled: bool = typer.Option(False, "--disabled", help="Add it switched off."),
        server: str = ServerOption, api_key: str = ApiKeyOption,
        as_json: bool = JsonOption) -> None:
    """Add a webhook. Its secret is printed this once: keep it to verify signatures."""
    body = {"url": url, "name": name, "events": event or None, "secret": secret,
            "enabled": not disabled}
    hook = _with(server, api_key, lambda c: c.post(f"{BASE}/webhooks", body))
    show(hook, as_json, f"{_hook_line(hook)}\n\nSigning secret (shown once; keep it):\n"
                        f"  {hook['secret']}")


@webhooks_app.command("list")
def list_webhooks(server: str = ServerOption, api_key: str = ApiKeyOption,
                  as_json: bool = JsonOption) -> None:
    """List the tenant's webhooks (secrets masked)."""
    answer = _with(server, api_key, lambda c: c.get(f"{BASE}/webhooks"))
    if as_json:
        print_json(answer)
        return
    for hook in answer["items"]:
        out.print(_hook_line(hook), highlight=False)
    if not answer["items"]:
        out.print("no webhooks", highlight=False)


@webhooks_app.command("update")
def update(webhook_id: str = typer.Argument(..., help="The webhook's id."),
           url: str | None = typer.Option(None, "--url"),
           name: str | None = typer.Option(None, "--name", "-n"),
           event: list[str] = EventOption,
           enable: bool | None = typer.Option(None, "--enable/--disable"),
           rotate_secret: bool = typer.Option(False, "--rotate-secret",
                                              help="Make a new secret (printed once)."),
           server: str = ServerOption, api_key: str = ApiKeyOption,
           as_json: bool = JsonOption) -> None:
    """Change a webhook: URL, name, events, on/off, or a new secret."""
    body = {"url": url, "name": name, "events": event or None, "enabled": enable,
            "rotate_secret": rotate_secret}
    hook = _with(server, api_key, lambda c: c.patch(
        f"{BASE}/webhooks/{webhook_id}", {k: v for k, v in body.items() if v is not None}))
    summary = _hook_line(hook)
    if rotate_secret:
        summary += f"\n\nNew signing secret (shown once; keep it):\n  {hook['secret']}"
    show(hook, as_json, summary)


@webhooks_app.command("remove")
def remove(webhook_id: str = typer.Argument(..., help="The webhook's id."),
           server: str = ServerOption, api_key: str = ApiKeyOption,
           as_json: bool = JsonOption) -> None:
    """Remove a webhook (its delivery log stays)."""
    answer = _with(server, api_key, lambda c: c.delete(f"{BASE}/webhooks/{webhook_id}"))
    show(answer, as_json, answer["message"])


@webhooks_app.command("test")
def test(webhook_id: str = typer.Argument(..., help="The webhook's id."),
         server: str = ServerOption, api_key: str = ApiKeyOption,
         as_json: bool = JsonOption) -> None:
    """Send a signed `ping` now and show the answer (exit code 4 if not delivered)."""
    delivery = _with(server, api_key,
                     lambda c: c.post(f"{BASE}/webhooks/{webhook_id}/test"))
    show(delivery, as_json, _delivery_line(delivery))
    if delivery["status"] != "delivered":
        raise typer.Exit(EXIT_NOT_DELIVERED)


@app.command("deliveries")
def deliveries(status: str | None = typer.Option(None, "--status",
                                                 help="pending, delivered or failed."),
               event: str | None = typer.Option(None, "--event", "-e"),
               channel: str | None = typer.Option(None, "--channel", help="webhook or email."),
               webhook: str | None = typer.Option(None, "--webhook", help="A webhook id."),
               page: int = typer.Option(1, "--page"), size: int = typer.Option(20, "--size"),
               server: str = ServerOption, api_key: str = ApiKeyOption,
               as_json: bool = JsonOption) -> None:
    """The delivery log, newest first."""
    answer = _with(server, api_key, lambda c: c.get(
        f"{BASE}/deliveries", status=status, event=event, channel=channel,
        webhook_id=webhook, page=page, size=size))
    if as_json:
        print_json(answer)
        return
    for item in answer["items"]:
        out.print(_delivery_line(item), highlight=False)
    pages = answer["pagination"]
    out.print(f"page {pages['current_page']} of {pages['total_pages']} "
              f"({pages['total_items']} deliveries)", highlight=False)
