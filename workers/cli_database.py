"""How the `crm-ingest` commands speak of the database: a missing SQLite file, a missing schema or an unreachable
server is one line saying what to do and a non-zero exit, never a traceback; a URL shown has its password masked."""
from __future__ import annotations

import os

import click

from ingest.settings import CONFIG_ENV, ConfigError, config_path, load_settings, mask_url

# PostgreSQL's undefined_table and undefined_column; sqlite3 says the same in words.
_MISSING_SCHEMA_STATES = ("42P01", "42703")
_MISSING_SCHEMA_WORDS = ("no such table", "no such column", "has no column named")


class DatabaseErrorsInOneLine(click.Group):
    """Runs every command so that a database it cannot reach is one line and a non-zero exit, not a traceback."""

    def invoke(self, ctx: click.Context):
        from sqlalchemy.exc import SQLAlchemyError

        from ingest.db import database_unavailable, driver_message

        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            if schema_missing(exc):
                raise click.ClickException(f"the database at {_database_shown()} has no crm-ingest schema (or is "
                                           f"older than this version): run crm-ingest migrate") from None
            if not database_unavailable(exc):
                raise
            raise click.ClickException(f"the database at {_database_shown()} is unavailable: "
                                       f"{driver_message(exc)}") from None


def require_database(database_url: str | None) -> None:
    """Before a command works on the store, or a process that serves it starts: a SQLite database that is not there
    stops it, saying what to do, rather than every request or task failing on it later."""
    from ingest.db_checks import missing_sqlite_database

    named = bool(os.environ.get(CONFIG_ENV))
    problem = missing_sqlite_database(database_url, config_path(), config_named=named) if database_url else None
    if problem:
        raise click.ClickException(problem)


def schema_missing(exc: BaseException) -> bool:
    """Whether a database error means a table or column this code expects is not there: never migrated, or older."""
    cause = getattr(exc, "orig", None)
    if cause is None:
        return False
    if getattr(cause, "sqlstate", None) in _MISSING_SCHEMA_STATES:  # psycopg
        return True
    return type(cause).__module__.startswith("sqlite3") and any(words in str(cause).lower()
                                                                for words in _MISSING_SCHEMA_WORDS)


def _database_shown() -> str:
    """The database's URL, password masked, and a SQLite file's absolute path: a relative one is the current
    directory's, which is not always the directory the user has in mind."""
    from ingest.sqlite_db import sqlite_file

    url = _database_url()
    if url is None:
        return "database_url"
    path = sqlite_file(url)
    return mask_url(url) + (f" ({path.absolute()})" if path is not None and not path.is_absolute() else "")


def _database_url() -> str | None:
    try:
        return load_settings().database_url
    except ConfigError:
        return None
