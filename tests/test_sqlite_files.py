"""Which engines may create the SQLite file: the migration's (and so `migrate` and `dev`), not a command's."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ingest.db import database_unavailable, make_engine, migrate


def test_an_engine_that_may_not_create_the_file_fails_to_open_a_missing_one_and_creates_nothing(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/var/crm-ingest.db", create_sqlite_file=False)

    with pytest.raises(OperationalError) as failure:
        engine.connect()

    assert database_unavailable(failure.value)  # "unable to open database file"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, in_url", [("plain.db", "plain.db"), ("with space.db", "with space.db"),
                                           ("hash#mark.db", "hash#mark.db"), ("100%.db", "100%25.db")])
def test_an_engine_that_may_not_create_the_file_opens_one_that_is_there(tmp_path, name, in_url):
    """The path goes into a SQLite URI (`file:…?mode=rw`), where these characters would mean something else."""
    with sqlite3.connect(tmp_path / name) as connection:
        connection.execute("CREATE TABLE t (n INTEGER)")
        connection.execute("INSERT INTO t VALUES (7)")
    connection.close()
    engine = make_engine(f"sqlite:///{tmp_path}/{in_url}", create_sqlite_file=False)

    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM t")).scalar_one() == 7
    engine.dispose()


def test_migrate_creates_the_file_and_its_folder(tmp_path):
    migrate(f"sqlite:///{tmp_path}/var/crm-ingest.db")

    assert (tmp_path / "var" / "crm-ingest.db").is_file()
