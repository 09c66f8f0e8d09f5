"""Alembic environment: run with the connection that Catalog.migrate hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from strongbox.catalog.models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the alembic command line, e.g. `alembic revision --autogenerate`
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
