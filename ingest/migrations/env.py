"""Alembic environment: runs migrations for `crm-ingest migrate` against SQLite or PostgreSQL alike.

All migrations run in one transaction that first makes every other `migrate` of the same database wait (two
`migrate` at once, e.g. two containers starting): the one that waited then finds the schema at head and does nothing.
"""
from alembic import context
from sqlalchemy import pool, text

import crm_sync.schema  # noqa: F401  (the contact store's tables join Base.metadata)
from ingest.db import WRITES, make_engine
from ingest.migrations import STARTING_REVISION
from ingest.schema import Base

target_metadata = Base.metadata
# The PostgreSQL advisory lock `migrate` holds is (this, the schema): see _wait_for_other_migrations.
MIGRATION_LOCK_KEY = 0x6372_6D69  # "crmi"


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, poolclass=pool.NullPool)
    # WRITES makes ingest.db's SQLite hook begin with BEGIN IMMEDIATE: the write lock is asked for first, so a second
    # `migrate` waits on the busy timeout instead of failing with "database is locked" at its first write.
    with engine.connect().execution_options(**{WRITES: True}) as connection, connection.begin():
        _wait_for_other_migrations(connection)
        # Begun above, the transaction is external to Alembic, which then runs every migration inside it.
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
            compare_type=True,
        )
        migration = context.get_context()
        context.config.attributes[STARTING_REVISION] = migration.get_current_revision()
        context.run_migrations()
    engine.dispose()


def _wait_for_other_migrations(connection) -> None:
    """On PostgreSQL, a transaction-scoped advisory lock (released at commit or rollback, also if the process dies).

    Advisory locks are per database; the schema in the key keeps migrations of different schemas of one database (a
    search_path per deployment or per test process) from waiting on each other. SQLite's BEGIN IMMEDIATE already
    serialised us."""
    if connection.dialect.name != "postgresql":
        return
    connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY}, "
                            "hashtext(coalesce(current_schema(), '')))"))


run_migrations()
