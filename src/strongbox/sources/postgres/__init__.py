"""PostgreSQL source: consistent, record-aware backups of a schema; full, selective and
merge restores."""

from strongbox.sources.postgres.backup import backup_postgres
from strongbox.sources.postgres.merge import plan_restore_postgres, restore_postgres
from strongbox.sources.postgres.restore import restore_postgres_full

__all__ = ["backup_postgres", "plan_restore_postgres", "restore_postgres",
           "restore_postgres_full"]
