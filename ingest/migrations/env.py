"""Alembic environment: runs migrations for `crm-ingest migrate` against SQLite or PostgreSQL alike."""
from alembic import context
from sqlalchemy import pool

import crm_sync.schema  # noqa: F401  (the contact store's tables join Base.metadata)
from ingest.db import make_engine
from ingest.schema import Base

target_metadata = Base.metadata


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
