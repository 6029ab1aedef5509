"""A command run where there is no SQLite database creates none, and says where it looked and what to do.

Run outside the directory `crm-ingest dev` set up, a listing once created an empty `var/crm-ingest.db` and advised
`crm-ingest migrate`, which made that empty database look like the user's store. Only `migrate` (and `dev`, through
it) creates a database; everything else stops with one line and exit 1, leaving the directory as it was.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ingest.db import migrate

CREATE = "or run `crm-ingest migrate` to create a new one"
DEV_DATABASE = "var/crm-ingest.db"


def crm_ingest(cwd, *args, config=None, database_url=None, timeout=60):
    """The CLI as a user runs it in `cwd`: without CRM_INGEST_CONFIG unless `config` is given."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CRM_INGEST_CONFIG", "DATABASE_URL", "BROKER_URL", "CRM_INGEST_ADMIN_TOKEN")}
    if config is not None:
        env["CRM_INGEST_CONFIG"] = str(config)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def elsewhere(tmp_path):
    """An empty directory: not the one `crm-ingest dev` set up."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


@pytest.fixture
def dev_directory(tmp_path):
    """What `crm-ingest dev` leaves: its config and its migrated database, relative paths and all."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "crm-ingest.toml").write_text('admin_token = "admin-0123456789"\n')
    migrate(f"sqlite:///{folder / DEV_DATABASE}")
    return folder


def test_a_listing_run_elsewhere_creates_no_database_and_exits_1(elsewhere):
    result = crm_ingest(elsewhere, "events", "list")

    assert result.returncode == 1
    assert list(elsewhere.iterdir()) == []


def test_it_names_the_absolute_path_the_current_directory_and_the_missing_config(elsewhere):
    result = crm_ingest(elsewhere, "events", "list")

    assert result.stderr == (
        f"Error: no database at {elsewhere / DEV_DATABASE} (relative to the current directory {elsewhere}); no "
        f"crm-ingest.toml here either: run from the directory where `crm-ingest dev` wrote it, set "
        f"CRM_INGEST_CONFIG, {CREATE}\n")


def test_a_config_named_by_crm_ingest_config_that_is_not_there_is_named(elsewhere):
    result = crm_ingest(elsewhere, "events", "list", config=elsewhere / "missing.toml")

    assert f"; no config file at {elsewhere / 'missing.toml'} either: " in result.stderr


def test_with_the_real_config_elsewhere_it_says_relative_paths_follow_the_current_directory(elsewhere,
                                                                                            dev_directory):
    config = dev_directory / "crm-ingest.toml"

    result = crm_ingest(elsewhere, "events", "list", config=config)

    assert result.returncode == 1
    assert result.stderr == (
        f"Error: no database at {elsewhere / DEV_DATABASE} (relative to the current directory {elsewhere}); "
        f"relative paths are taken from the current directory, not from the folder of {config}: run from the "
        f"directory that holds {DEV_DATABASE}, write an absolute path in database_url, {CREATE}\n")
    assert list(elsewhere.iterdir()) == []


def test_the_same_command_in_the_dev_directory_finds_its_database(dev_directory):
    result = crm_ingest(dev_directory, "events", "list")

    assert (result.returncode, result.stderr) == (0, "no events match\n")


def test_an_absolute_path_that_is_not_there_is_named_as_it_is(elsewhere):
    database = elsewhere / "store" / "crm.db"

    result = crm_ingest(elsewhere, "events", "list", database_url=f"sqlite:///{database}")

    assert result.stderr == f"Error: no database at {database}: check database_url, {CREATE}\n"
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("command", [  # one of each module's commands; sweep builds the embedded broker first
    ("sweep",), ("replay", "--event", "1"), ("deliveries", "list"), ("forget", "--email", "a@example.com"),
])
def test_no_command_that_works_on_the_store_creates_one(elsewhere, command):
    result = crm_ingest(elsewhere, *command)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: no database at ")
    assert list(elsewhere.iterdir()) == []  # not even the embedded broker's folders


@pytest.mark.parametrize("command", [("web", "--port", "0"), ("worker",), ("beat",)])
def test_web_worker_and_beat_do_not_start_without_the_database(elsewhere, command):
    result = crm_ingest(elsewhere, *command)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: no database at ")
    assert list(elsewhere.iterdir()) == []  # nor the web's metrics folder


def test_following_the_advice_to_migrate_creates_the_database_where_the_message_said(elsewhere):
    crm_ingest(elsewhere, "events", "list")

    assert crm_ingest(elsewhere, "migrate").returncode == 0

    assert (elsewhere / DEV_DATABASE).is_file()
    assert crm_ingest(elsewhere, "events", "list").returncode == 0


def test_a_database_without_the_schema_is_named_by_its_absolute_path(elsewhere):
    import sqlite3

    (elsewhere / "var").mkdir()
    sqlite3.connect(elsewhere / DEV_DATABASE).close()  # as an older crm-ingest's listing left it

    result = crm_ingest(elsewhere, "events", "list")

    assert result.stderr == (f"Error: the database at sqlite:///{DEV_DATABASE} ({elsewhere / DEV_DATABASE}) has no "
                             f"crm-ingest schema (or is older than this version): run crm-ingest migrate\n")


def test_a_database_that_is_not_a_sqlite_file_is_not_looked_for(elsewhere):
    """PostgreSQL's errors are its own (test_cli, test_admin_database_down): no file is expected for it."""
    result = crm_ingest(elsewhere, "events", "list", database_url="postgresql+psycopg://127.0.0.1:1/none")

    assert result.returncode == 1
    assert "no database at" not in result.stderr
    assert result.stderr.startswith("Error: the database at postgresql+psycopg://127.0.0.1:1/none is unavailable")
