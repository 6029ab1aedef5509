"""`crm-ingest migrate` brings any database, empty or older, to the schema the code expects."""
from __future__ import annotations

import multiprocessing

import pytest
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


def _migrate_after(barrier, url: str) -> None:
    """One of several `migrate` run at the same moment (a child process)."""
    import alembic.command  # noqa: F401  (imported before the barrier, so the processes reach the database together)

    barrier.wait(timeout=60)
    migrate(url)


def _migrate_at_once(url: str, processes: int = 2) -> list[int]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    children = [context.Process(target=_migrate_after, args=(barrier, url)) for _ in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    return [child.exitcode for child in children]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_migrations_of_one_empty_database_at_once_both_succeed(kind, tmp_path, request):
    url = f"sqlite:///{tmp_path}/at-once.db" if kind == "sqlite" else request.getfixturevalue(
        "empty_postgres_schema_url")
    assert _migrate_at_once(url) == [0, 0]
    engine = create_engine(url)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert versions == [revisions()[-1]]
