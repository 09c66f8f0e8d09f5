"""PostgreSQL source: consistent, record-aware backups of a schema, and full restores."""

from strongbox.sources.postgres.backup import backup_postgres
from strongbox.sources.postgres.restore import restore_postgres_full

__all__ = ["backup_postgres", "restore_postgres_full"]
