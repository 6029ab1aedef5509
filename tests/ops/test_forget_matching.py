"""Right to erasure finds the person however their email or phone was written: behind an extension, in a value that
never parsed, in other people's requests, and in JSON that escapes non-ASCII."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from crm_sync.contacts import find_contact_ids
from crm_sync.pipeline import process_event
from crm_sync.schema import ContactValue
from ingest.schema import Erasure, Event
from tests.ops.conftest import post_generic
from tests.ops.test_forget import events, forget, rows_of

PAVEL_NUMBER = "+74957654321"


def stored(client, runtime, body: dict | bytes) -> int:
    """Post a generic request, process it, and return its event id."""
    post_generic(client, body)
    with runtime.sessions() as session:
        event_id = session.scalar(select(func.max(Event.id)))
    process_event(runtime.sessions, event_id)
    return event_id


def contact_of(runtime, event_id: int) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(ContactValue.contact_id).where(ContactValue.first_event_id == event_id))


def assert_erased(runtime, contact_id: int) -> None:
    rows = rows_of(runtime, contact_id)
    assert rows["identities"] == [] and rows["values"] == []
    assert (rows["contact"].name, rows["contact"].primary_phone) == (None, None)


def test_a_phone_stored_with_an_extension_is_found_by_its_number(ops_client, ops_runtime):
    event_id = stored(ops_client, ops_runtime, {"phone": "+7 495 765-43-21 доб. 12", "name": "Pavel"})
    pavel = contact_of(ops_runtime, event_id)

    report = forget(ops_runtime, phone=PAVEL_NUMBER)

    assert report.contact_ids == [pavel] and report.event_ids == [event_id]
    assert_erased(ops_runtime, pavel)


def test_a_phone_with_an_extension_does_not_find_another_extension(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, {"phone": "+7 495 765-43-21 доб. 12", "name": "Pavel"})

    report = forget(ops_runtime, phone="+7 495 765-43-21 доб. 13")

    assert not report.found


def test_a_phone_kept_unverified_with_extra_text_is_found_by_its_digits(ops_client, ops_runtime):
    event_id = stored(ops_client, ops_runtime, {"phone": "8 495 765 43 21 (Павел)", "name": "Pavel"})
    pavel = contact_of(ops_runtime, event_id)
    with ops_runtime.sessions() as session:
        assert find_contact_ids(session, phone=PAVEL_NUMBER) == set()  # no identity: the number never parsed

    report = forget(ops_runtime, phone=PAVEL_NUMBER)

    assert report.contact_ids == [pavel] and report.event_ids == [event_id]
    assert_erased(ops_runtime, pavel)


def test_nothing_matching_says_so_and_records_no_erasure(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, {"phone": "+7 495 765-43-21", "name": "Pavel"})

    report = forget(ops_runtime, phone="+7 495 000-11-22")

    assert (report.found, report.erasure_id) == (False, None)
    with ops_runtime.sessions() as session:
        assert session.scalars(select(Erasure)).all() == []


def test_a_processed_event_of_someone_else_naming_their_email_in_another_case_is_erased(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, {"email": "forget.me@mail.ru", "name": "Forget Me"})
    other = stored(ops_client, ops_runtime, {"email": "olga@example.com", "kind": "lead", "event_id": "L1",
                                             "subject": "I talked to Forget.Me@Mail.RU"})

    report = forget(ops_runtime, email="FORGET.me@mail.ru")

    assert other in report.event_ids
    assert events(ops_runtime, other)[0].body is None


def test_a_processed_event_of_someone_else_naming_their_phone_in_another_format_is_erased(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, {"phone": "+7 916 777-88-99", "name": "Forget Me"})
    other = stored(ops_client, ops_runtime, {"email": "olga@example.com", "kind": "lead", "event_id": "L1",
                                             "subject": "call 8 (916) 777 88 99"})

    report = forget(ops_runtime, phone="+79167778899")

    assert other in report.event_ids
    assert events(ops_runtime, other)[0].body is None


def test_an_event_naming_their_phone_with_an_extension_is_erased(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, {"phone": "+7 916 777-88-99", "name": "Forget Me"})
    other = stored(ops_client, ops_runtime, {"email": "olga@example.com", "subject": "8 (916) 777 88 99 доб. 5"})

    report = forget(ops_runtime, phone="+79167778899")

    assert other in report.event_ids


def test_a_json_body_escaping_non_ascii_that_names_their_email_is_erased(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, json.dumps({"email": "иван@пример.рф", "name": "Иван"},
                                               ensure_ascii=False).encode())
    escaped = json.dumps({"email": "olga@example.com", "subject": "write to иван@пример.рф"}).encode()
    assert b"\\u0438\\u0432\\u0430\\u043d@" in escaped  # as PHP's json_encode writes it
    other = stored(ops_client, ops_runtime, escaped)

    report = forget(ops_runtime, email="иван@пример.рф")

    assert other in report.event_ids


def test_a_broken_json_body_escaping_non_ascii_that_names_their_email_is_erased(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, json.dumps({"email": "иван@пример.рф"}, ensure_ascii=False).encode())
    dead = stored(ops_client, ops_runtime, b'{"email": "\\u0438\\u0432\\u0430\\u043d@\\u043f\\u0440\\u0438'
                                           b'\\u043c\\u0435\\u0440.\\u0440\\u0444", "name": ')

    report = forget(ops_runtime, email="иван@пример.рф")

    assert events(ops_runtime, dead)[0].status == "dead" and dead in report.event_ids


def test_other_peoples_requests_that_do_not_name_them_are_kept(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, {"phone": "+7 916 777-88-99", "email": "forget.me@mail.ru"})
    other = stored(ops_client, ops_runtime, {"email": "olga@example.com", "subject": "call 8 (916) 777 88 90"})

    report = forget(ops_runtime, email="forget.me@mail.ru")

    assert other not in report.event_ids and events(ops_runtime, other)[0].body


def test_a_dry_run_reports_exactly_what_the_real_run_erases(ops_client, ops_runtime):
    stored(ops_client, ops_runtime, {"phone": "+7 495 765-43-21 доб. 12", "name": "Pavel"})
    stored(ops_client, ops_runtime, {"phone": "8 495 765 43 21 (Павел)", "name": "Pavel"})
    stored(ops_client, ops_runtime, {"email": "olga@example.com", "subject": "call 8 (495) 765 43 21"})
    stored(ops_client, ops_runtime, {"email": "boris@example.com", "name": "Boris"})

    dry = forget(ops_runtime, dry_run=True, phone=PAVEL_NUMBER).as_dict()
    real = forget(ops_runtime, phone=PAVEL_NUMBER).as_dict()

    assert len(dry["contact_ids"]) == 2 and len(dry["event_ids"]) == 3
    assert {**dry, "dry_run": False, "erasure_id": real["erasure_id"]} == real


def test_an_email_too_long_to_be_valid_is_found_in_their_contact_and_in_other_requests(ops_client, ops_runtime):
    address = "a.very.long.local.part." * 3 + "that.never.validates@mail.ru"
    own = stored(ops_client, ops_runtime, {"email": address, "name": "Long"})
    someone_else = stored(ops_client, ops_runtime, {"phone": "+7 495 765-43-21", "comment": f"ask {address}"})
    long = contact_of(ops_runtime, own)

    report = forget(ops_runtime, email=address)

    assert report.contact_ids == [long] and report.event_ids == sorted([own, someone_else])
    assert_erased(ops_runtime, long)
