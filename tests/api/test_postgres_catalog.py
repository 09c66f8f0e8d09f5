"""The catalog on PostgreSQL (``STRONGBOX_DATABASE_URL``): same migrations, same API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import URL

from strongbox.catalog.models import Base
from tests.api.conftest import Server, running_server
from tests.pg_server import running_postgres


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_postgres() as postgres:
        postgres.create_database("strongbox_catalog")
        url = URL.create("postgresql+psycopg", username=postgres.user,
                         password=postgres.password, host=postgres.host, port=postgres.port,
                         database="strongbox_catalog")
        with running_server(Path(tmp_path_factory.mktemp("pg")),
                            database_url=url.render_as_string(hide_password=False)
                            ) as server:
            yield server


def test_migrations_match_the_models_on_postgres(pg_server: Server) -> None:
    engine = pg_server.services.catalog.engine
    assert engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_backups_through_a_postgres_catalog(pg_server: Server) -> None:
    created = pg_server.backup_and_wait({"name": "On postgres", "type": "full"})
    detail = pg_server.client.get(f"/api/v1/backups/{created['backup_id']}",
                                  headers=pg_server.headers()).json()
    assert detail["contents"]["messages_count"] > 0
    listing = pg_server.client.get("/api/v1/backups?search=POSTGRES&sort=size_bytes,desc",
                                   headers=pg_server.headers()).json()
    assert [i["_id"] for i in listing["items"]] == [created["backup_id"]]
    assert listing["summary"]["oldest_backup"] == detail["created_at"]
    stats = pg_server.client.get("/api/v1/backups/statistics", headers=pg_server.headers())
    assert stats.json()["summary"]["total_backups"] == 1
    audit = pg_server.client.get("/api/v1/audit", headers=pg_server.headers()).json()
    assert audit["items"][0]["action"] == "create_backup"
