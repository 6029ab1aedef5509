"""Migration 0002 adds the contact store and can be taken back, on SQLite and on PostgreSQL, keeping raw events."""
from __future__ import annotations

from typing import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from ingest.db import alembic_config, migrate

CONTACT_TABLES = {"contacts", "contact_identities", "contact_values", "interactions", "interaction_events"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/migrations.db"
    else:
        yield request.getfixturevalue("empty_postgres_schema_url")


def test_the_contact_store_migration_goes_down_to_0001_and_up_again_keeping_events(empty_database):
    migrate(empty_database, "0002")
    engine = create_engine(empty_database)
    assert CONTACT_TABLES <= set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO events (source, provider, dedup_key, method, path, query_string, headers, content_type, "
            "remote_addr, received_at, duplicate_count, status, attempts) VALUES ('s', 'generic', 'k', 'POST', "
            "'/hooks/s', '', '{}', '', '', '2026-01-01 00:00:00', 0, 'received', 0)"))

    command.downgrade(alembic_config(empty_database), "0001")
    assert not CONTACT_TABLES & set(inspect(engine).get_table_names())
    migrate(empty_database, "0002")
    assert CONTACT_TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM events")).scalar_one() == 1
    engine.dispose()
