"""The catalog: what the server knows about tenants' keys, sources, backups and jobs.

SQLAlchemy 2 models with Alembic migrations; a SQLite file by default, PostgreSQL by URL.
Backup *data* never lives here, only its description: the repository holds the data.
"""
