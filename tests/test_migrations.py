"""`crm-ingest migrate` brings any database, empty or older, to the schema the code expects."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from ingest.db import alembic_config, migrate
from ingest.schema import Base


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_migrating_an_empty_sqlite_database_creates_every_table(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.db"
    migrate(url)
    tables = set(inspect(create_engine(url)).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_the_migrated_schema_matches_the_models_on_sqlite_and_postgresql(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_an_older_database_is_upgraded_step_by_step_keeping_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    first = revisions()[0]
    migrate(url, first)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO events (source, provider, dedup_key, method, path, query_string, headers, body, "
            "content_type, remote_addr, received_at, duplicate_count, status, attempts) VALUES "
            "('s', 'generic', 'k', 'POST', '/hooks/s', '', '{}', x'00ff', '', '', '2026-01-01 00:00:00', 0, "
            "'received', 0)"))
    migrate(url)
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        body = connection.execute(text("SELECT body FROM events")).scalar_one()
    assert version == revisions()[-1]
    assert body == b"\x00\xff"


def test_migrating_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path}/twice.db"
    migrate(url)
    migrate(url)
