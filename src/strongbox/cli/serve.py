"""``strongbox serve`` (the HTTP server) and ``strongbox keys ...`` (its API keys).

Wire-up in cli/main.py::

    app.command()(serve.serve)
    app.add_typer(serve.keys_app, name="keys")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from strongbox.cli.console import out, print_json, run
from strongbox.settings import Settings

DataDirOpt = typer.Option(None, "--data-dir", envvar="STRONGBOX_DATA_DIR",
                          help="Data directory: catalog, default repository, demo data "
                               "(default ./.strongbox).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(8000, help="Port to listen on."),
          data_dir: Path | None = DataDirOpt,
          demo: bool = typer.Option(False, "--demo", envvar="STRONGBOX_DEMO",
                                    help="At first start, register demo sources and print "
                                         "an admin API key.")) -> None:
    """Run the HTTP server (REST API v1 and WebSocket events; OpenAPI at /docs)."""
    import uvicorn

    from strongbox.api.app import create_app
    from strongbox.logs import configure_logging

    def body() -> None:
        settings = _settings(data_dir, demo=demo or None)
        # One log setup (STRONGBOX_LOG_FORMAT, docs/monitoring.md) for the server and
        # uvicorn alike; the request middleware writes the access log, with request ids.
        configure_logging(settings.log_format, settings.log_level)
        app = create_app(settings)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                    log_level=settings.log_level.lower())

    run(body)


keys_app = typer.Typer(help="API keys of the server (shown once, stored hashed).",
                       no_args_is_help=True)


def _key_services(data_dir: Path | None) -> Any:
    from strongbox.catalog.database import Catalog
    from strongbox.services.keys import KeyService

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    return KeyService(catalog)


@keys_app.command("create")
def keys_create(role: str = typer.Option(..., help="admin, operator or viewer."),
                tenant: str = typer.Option(..., help="The tenant the key acts for."),
                name: str = typer.Option("", help="A label to tell keys apart."),
                data_dir: Path | None = DataDirOpt, json: bool = JsonOpt) -> None:
    """Create an API key and print it (the only time it is shown)."""
    def body() -> None:
        info, token = _key_services(data_dir).create(tenant, role, name)
        if json:
            print_json({"id": info.id, "tenant": info.tenant, "role": info.role.value,
                        "name": info.name, "key": token})
            return
        out.print(f"created {info.role} key {info.id[:8]} ({info.name}) for tenant "
                  f"{info.tenant!r}; it is shown only now:", highlight=False)
        out.print(token, highlight=False, soft_wrap=True)
    run(body)


@keys_app.command("list")
def keys_list(tenant: str | None = typer.Option(None, help="Only this tenant's keys."),
              data_dir: Path | None = DataDirOpt, json: bool = JsonOpt) -> None:
    """List API keys (never the keys themselves)."""
    def body() -> None:
        keys = _key_services(data_dir).list(tenant)
        if json:
            print_json([{"id": k.id, "tenant": k.tenant, "role": k.role.value, "name": k.name,
                         "prefix": k.prefix, "created_at": k.created_at,
                         "last_used_at": k.last_used_at, "revoked_at": k.revoked_at}
                        for k in keys])
            return
        for k in keys:
            state = "revoked" if k.revoked_at else "active"
            out.print(f"{k.id[:8]}  {k.tenant:<16} {k.role.value:<8} {state:<7} {k.prefix}…  "
                      f"{k.name}", highlight=False)
    run(body)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="Key id or unique prefix."),
                data_dir: Path | None = DataDirOpt) -> None:
    """Revoke an API key: it stops working at once."""
    def body() -> None:
        info = _key_services(data_dir).revoke(key_id)
        out.print(f"revoked key {info.id[:8]} ({info.name}, tenant {info.tenant!r})",
                  highlight=False)
    run(body)
