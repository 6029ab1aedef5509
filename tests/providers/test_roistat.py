"""Roistat "own CRM": what Roistat sends (GET query strings, sometimes a form POST) and what it must get back.

These run through the real app on SQLite and PostgreSQL. Authentication is in test_roistat_auth.py, parsing in
test_roistat_parsing.py, Roistat's polls of our store in test_roistat_export.py.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from crm_sync.contacts import list_interactions
from crm_sync.model import ConversationState
from crm_sync.pipeline import process_event
from ingest.providers import get_provider
from ingest.settings import settings_from_dict
from tests.providers.roistat_support import (
    HOOK, PASSWORD, SOURCE, SOURCES, TOKEN, USER, sample, with_param,
)
from workers.web import ACCESS_LOG_FORMAT

FORM = "application/x-www-form-urlencoded"
roistat = get_provider("roistat")


@pytest.fixture
def harness(provider_harness):
    return provider_harness(SOURCES)


# --- the lead answer and its redeliveries ----------------------------------------------------------------------

def test_a_lead_is_answered_with_status_ok_and_its_order_id(harness):
    response = harness.client.get(HOOK, query_string=sample("lead.query"))
    [event] = harness.events()
    assert response.json == {"status": "ok", "order_id": str(event.id)}


def test_a_redelivered_lead_gets_the_same_order_id_and_stays_one_event(harness):
    first = harness.client.get(HOOK, query_string=sample("lead.query")).json
    again = harness.client.get(HOOK, query_string=sample("lead.query")).json
    assert again == first
    [event] = harness.events()
    assert event.duplicate_count == 1


def test_a_redelivery_with_other_values_is_still_the_same_lead(harness):
    first = harness.client.get(HOOK, query_string=sample("lead.query")).json
    changed = with_param(with_param(sample("lead.query"), "created_date", "2015-06-28+09%3A17%3A54"), "name", "Bob")
    assert harness.client.get(HOOK, query_string=changed).json == first
    assert len(harness.events()) == 1


def test_a_new_roistat_lead_id_gets_a_new_order_id(harness):
    first = harness.client.get(HOOK, query_string=sample("lead.query")).json["order_id"]
    second = harness.client.get(HOOK, query_string=with_param(sample("lead.query"), "id", "91")).json["order_id"]
    assert first != second
    assert len(harness.events()) == 2


def test_the_same_lead_id_from_another_roistat_source_is_another_order(provider_harness):
    other = {"roistat-second": {"provider": "roistat", "user": USER, "password": PASSWORD}}
    harness = provider_harness({**SOURCES, **other})
    first = harness.client.get(HOOK, query_string=sample("lead.query")).json["order_id"]
    second = harness.client.get("/hooks/roistat-second", query_string=sample("lead.query")).json["order_id"]
    assert first != second


def test_the_stored_request_is_the_query_string_byte_for_byte(harness):
    query = sample("lead_lead_hunter_ru.query")
    harness.client.get(HOOK, query_string=query)
    [event] = harness.events()
    assert (event.method, event.query_string, event.body) == ("GET", query, b"")


def test_a_lead_posted_as_a_form_is_accepted(harness):
    response = harness.client.post(HOOK, data=sample("lead.form"), content_type=FORM)
    [event] = harness.process_all()
    assert response.json == {"status": "ok", "order_id": str(event.id)}
    assert event.result["records"][0]["person"]["name"] == "Ольга"


def test_query_parameters_win_over_form_fields(harness):
    credentials = f"user={USER}&token={TOKEN}&action=lead&id=90"
    harness.client.post(HOOK, query_string=credentials, data="id=666&name=Robert", content_type=FORM)
    [event] = harness.process_all()
    interaction = event.result["records"][0]["interaction"]
    assert interaction["lead"]["external_id"] == "90"
    assert event.result["records"][0]["person"]["name"] == "Robert"


# --- the other actions -----------------------------------------------------------------------------------------

def test_a_message_is_answered_with_status_ok(harness):
    response = harness.client.get(HOOK, query_string=sample("message.query"))
    assert response.json == {"status": "ok"}


def test_a_repeated_message_is_one_event_and_another_message_is_a_new_one(harness):
    harness.client.get(HOOK, query_string=sample("message.query"))
    harness.client.get(HOOK, query_string=sample("message.query"))
    harness.client.get(HOOK, query_string=with_param(sample("message.query"), "message", "%D0%95%D1%89%D1%91"))
    assert [event.duplicate_count for event in harness.events()] == [1, 0]


def test_a_task_is_answered_with_a_task_id(harness):
    response = harness.client.get(HOOK, query_string=sample("task.query"))
    [event] = harness.events()
    assert response.json == {"status": "ok", "task_id": str(event.id)}


def test_a_call_is_answered_with_a_call_id_that_is_stable_across_redeliveries(harness):
    first = harness.client.get(HOOK, query_string=sample("call.query")).json
    assert harness.client.get(HOOK, query_string=sample("call.query")).json == first
    [event] = harness.events()
    assert first == {"status": "ok", "call_id": str(event.id)}


def test_an_unknown_action_gets_400_is_stored_and_goes_dead_with_the_reason(harness):
    response = harness.client.get(HOOK, query_string=sample("unknown_action.query"))
    assert response.status_code == 400
    assert response.json["error"] == "unknown_action"
    assert "order_delete" in response.json["message"]
    [event] = harness.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "order_delete" in event.error_message


def test_a_request_without_an_action_gets_400(harness):
    response = harness.client.get(HOOK, query_string=f"user={USER}&token={TOKEN}&id=90")
    assert response.status_code == 400
    assert "no action parameter" in response.json["message"]


def test_a_request_without_an_action_is_told_which_actions_roistat_sends(harness):
    response = harness.client.get(HOOK, query_string=f"user={USER}&token={TOKEN}")
    assert response.json["message"].startswith("the request has no action parameter; Roistat sends one of lead, "
                                               "message, task, call, import_scheme, export, export_clients; ")
    [event] = harness.process_all()
    assert event.error_message.startswith("the request has no action parameter; Roistat sends one of lead, ")


def test_an_empty_action_is_said_to_be_empty(harness):
    response = harness.client.get(HOOK, query_string=with_param(sample("lead.query"), "action", ""))
    assert response.status_code == 400
    assert response.json["message"].startswith("the action parameter is empty; Roistat sends one of lead, ")


def test_an_unknown_action_is_quoted_in_the_reason(harness):
    response = harness.client.get(HOOK, query_string=sample("unknown_action.query"))
    assert response.json["message"].startswith("action 'order_delete' is not one of lead, message, task, call, ")


def test_import_scheme_lists_our_statuses_fields_and_no_managers(harness):
    response = harness.client.get(HOOK, query_string=sample("import_scheme.query"))
    assert response.status_code == 200
    assert [status["id"] for status in response.json["statuses"]] == [s.value for s in ConversationState]
    assert {field["id"] for field in response.json["fields"]} == {"roistat_lead_id", "crm_links"}
    assert response.json["managers"] == []


def test_read_only_queries_are_stored_and_end_ignored(harness):
    harness.client.get(HOOK, query_string=sample("import_scheme.query"))
    [event] = harness.process_all()
    assert event.status == "ignored"
    assert "read-only query" in event.error_message


def test_identical_polls_are_counted_on_one_stored_event(harness):
    for _ in range(3):
        harness.client.get(HOOK, query_string=sample("import_scheme.query"))
    [event] = harness.events()
    assert event.duplicate_count == 2


def test_export_with_unusable_paging_parameters_gets_400_and_goes_dead(harness):
    response = harness.client.get(HOOK, query_string=with_param(sample("export.query"), "offset", "-5"))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_parameters"
    assert "offset" in response.json["message"]
    [event] = harness.process_all()
    assert event.status == "dead"


@pytest.mark.parametrize("name, value", [("date", "253402300800"), ("date", "99999999999999999"),
                                         ("offset", "99999999999999999999999")])
def test_export_paging_parameters_beyond_any_date_or_row_get_400_naming_them(harness, name, value):
    response = harness.client.get(HOOK, query_string=with_param(sample("export.query"), name, value))
    assert (response.status_code, response.json["error"]) == (400, "invalid_parameters")
    assert name in response.json["message"]


@pytest.mark.parametrize("name", ["lead.query", "lead_minimal.query", "lead_empty_fields.query", "message.query",
                                  "task.query", "call.query"])
def test_every_event_action_is_processed_by_the_worker(harness, name):
    harness.client.get(HOOK, query_string=sample(name))
    [event] = harness.process_all()
    assert (event.status, event.error_message) == ("processed", None)


def test_notes_about_one_order_gather_on_one_interaction(harness):
    harness.client.get(HOOK, query_string=sample("message.query"))
    harness.client.get(HOOK, query_string=with_param(sample("message.query"), "message", "%D0%95%D1%89%D1%91"))
    harness.client.get(HOOK, query_string=sample("task.query"))
    harness.process_all()
    with harness.runtime.sessions() as session:
        total, notes = list_interactions(session, provider="roistat", kind="note")
    assert total == 1
    assert notes[0].conversation_id == "order:100500"


def test_notes_tasks_and_calls_about_an_order_find_the_contact_of_its_lead(harness):
    order_id = harness.client.get(HOOK, query_string=sample("lead.query")).json["order_id"]
    for name in ("message.query", "task.query", "call.query"):
        parameter = {"message.query": "leadId", "task.query": "elementId", "call.query": "order_id"}[name]
        harness.client.get(HOOK, query_string=with_param(sample(name), parameter, order_id))
    events = harness.process_all()
    assert [event.status for event in events] == ["processed"] * 4
    [robert] = harness.contacts()
    assert robert.name == "Robert"


def test_a_note_processed_before_its_lead_joins_the_lead_s_contact_when_the_lead_is_processed(harness):
    order_id = harness.client.get(HOOK, query_string=sample("lead.query")).json["order_id"]
    harness.client.get(HOOK, query_string=with_param(sample("message.query"), "leadId", order_id))
    lead, note = harness.events()
    for event in (note, lead):  # two workers, the note's first
        process_event(harness.runtime.sessions, event.id)
    [robert] = harness.contacts()
    assert robert.name == "Robert"


# --- the token stays out of every log --------------------------------------------------------------------------

def test_no_log_line_carries_the_token_or_the_password(harness, caplog):
    caplog.set_level(logging.DEBUG)
    harness.client.get(HOOK, query_string=sample("lead.query", token="0" * 32))
    harness.client.get(HOOK, query_string=sample("lead.query"))
    harness.client.get(HOOK, query_string=sample("unknown_action.query"))
    harness.process_all()
    assert "authentication failed" in caplog.text
    assert TOKEN not in caplog.text and "0" * 32 not in caplog.text and PASSWORD not in caplog.text


def test_the_access_log_line_leaves_the_query_string_and_its_token_out(tmp_path):
    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    config.set("access_log_format", ACCESS_LOG_FORMAT)
    query = sample("lead.query")
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"{HOOK}?{query}", "PATH_INFO": HOOK, "QUERY_STRING": query,
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "203.0.113.5"}
    response = SimpleNamespace(status="200 OK", sent=42, headers=[])
    Logger(config).access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=3))
    line = (tmp_path / "access.log").read_text()
    assert f'"GET {HOOK} HTTP/1.1" 200 42' in line
    assert TOKEN not in line


# --- setup ---------------------------------------------------------------------------------------------------------

def test_the_starter_source_and_instructions_name_the_login_password_and_both_addresses():
    section = roistat.starter_source("fresh-secret-token")
    settings = settings_from_dict({"sources": {SOURCE: section}}, env={})
    text = roistat.setup_instructions("https://example.test/hooks/roistat-main", settings.sources[SOURCE])
    assert "'roistat'" in text and "'fresh-secret-token'" in text
    assert "Адрес обработчика заявок" in text and "Адрес для получения доп. информации" in text

