"""`crm-ingest purge` and `crm-ingest forget` run as an operator runs them: a real process on a real database."""
from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from tests.test_cli import cli, store_requests, workdir  # noqa: F401  (workdir is a fixture)


def age_all_events(workdir, days: int) -> None:
    engine = create_engine(f"sqlite:///{workdir}/var/crm-ingest.db")
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE events SET received_at = datetime('now', '-{days} days')"))
    engine.dispose()


def test_purge_dry_run_then_purge_then_replay_is_refused(workdir):
    store_requests(workdir, b'{"email": "a@example.com"}', b"broken")
    age_all_events(workdir, 40)

    dry = cli(workdir, "purge", "--older-than", "30d", "--dry-run")
    done = cli(workdir, "purge", "--older-than", "30d")
    replay = cli(workdir, "replay", "--event", "2")

    assert "would purge the raw requests of 2 finished event(s)" in dry.stdout
    assert "purged the raw requests of 2 finished event(s)" in done.stdout
    assert replay.returncode == 1 and "event 2 cannot be replayed: its raw request was purged" in replay.stderr
    assert "would replay 0 of 1 event(s) (1 purged" in cli(workdir, "replay", "--status", "dead", "--dry-run").stdout


def test_purge_rejects_a_duration_it_cannot_read(workdir):
    result = cli(workdir, "purge", "--older-than", "a month")

    assert result.returncode == 2 and "--older-than" in result.stderr


def test_forget_prints_what_it_erased(workdir):
    store_requests(workdir, b'{"email": "Ivan@Example.com", "phone": "8 916 123-45-67", "name": "Ivan"}',
                   b'{"email": "olga@example.com"}')

    result = cli(workdir, "forget", "--phone", "+7 (916) 1234567")
    again = json.loads(cli(workdir, "forget", "--email", "ivan@example.com", "--json").stdout)

    assert result.returncode == 0
    assert "erased: 1 contact(s) (1)" in result.stdout and "the raw requests of 1 event(s) (1)" in result.stdout
    assert "tombstone: erasure 1" in result.stdout
    assert (again["contact_ids"], again["event_ids"]) == ([], [])


def test_forget_needs_an_email_or_a_phone(workdir):
    result = cli(workdir, "forget")

    assert result.returncode == 2 and "--email and/or --phone" in result.stderr


def test_forget_refuses_an_email_and_a_phone_of_different_people(workdir):
    store_requests(workdir, b'{"email": "anna@example.com", "name": "Anna"}', b'{"phone": "+79161234567"}')

    result = cli(workdir, "forget", "--email", "anna@example.com", "--phone", "8 916 123-45-67")

    assert result.returncode == 1 and "belong to different contacts (email: [1]; phone: [2])" in result.stderr
    assert "erase each separately" in result.stderr
    assert json.loads(cli(workdir, "forget", "--email", "anna@example.com", "--dry-run", "--json").stdout)[
        "contact_ids"] == [1]
