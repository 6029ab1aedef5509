"""Roistat parsing: what the worker makes of a stored request, and which requests are one logical event.

The requests are the samples in tests/payloads/roistat/, read exactly as the worker reads a stored event.
"""
from __future__ import annotations

import pytest

from crm_sync.model import ConversationState, InteractionKind, ProviderIdentity
from ingest.providers import IgnoreEvent, ParseError, get_provider
from tests.providers.roistat_support import TOKEN, USER, get_request, sample, utc, with_param

roistat = get_provider("roistat")


def parse_one(query: str):
    records = roistat.parse(get_request(query))
    assert len(records) == 1
    return records[0]


# --- parsing: what the worker makes of the stored request ------------------------------------------------------

def test_the_documented_lead_becomes_a_person_and_a_lead_interaction():
    record = parse_one(sample("lead.query"))
    assert record.event_type == "lead"
    assert record.person.name == "Robert"
    assert record.person.emails == ["email@mail.com"]
    assert record.person.phones == ["+11230001122"]
    assert record.person.identities == [ProviderIdentity(kind="roistat.visit", value="12852")]
    interaction = record.interaction
    assert (interaction.kind, interaction.provider, interaction.external_id) == (InteractionKind.LEAD, "roistat", "90")
    assert interaction.subject == "Caught lead: 11230001122"
    assert interaction.page.url == "http://site.com/"
    assert interaction.lead.external_id == "90" and interaction.lead.visit == "12852"
    assert interaction.lead.data == {"page": "http://site.com/"}


def test_a_stored_lead_claims_the_order_id_it_was_answered_with():
    [record] = roistat.parse_stored(get_request(sample("lead.query")), 7)
    assert ProviderIdentity(kind="roistat.order", value="7") in record.person.identities


@pytest.mark.parametrize("visit", ["0", "000", ""])
def test_a_zero_or_empty_visit_names_nobody(visit):
    record = parse_one(with_param(sample("lead.query"), "visit", visit))
    assert record.person.identities == []


def test_created_date_is_read_as_utc():
    assert parse_one(sample("lead.query")).interaction.occurred_at == utc(2015, 6, 28, 9, 12, 54)


def test_multi_line_text_is_kept_line_for_line():
    text = parse_one(sample("lead.query")).interaction.lead.text
    assert text.splitlines() == ["Data of the form: 11230001122", "Promo-code: 1674",
                                 "Landing page: http://site.com", "Date of dispatch: 17:22 15.04.2015"]


def test_percent_encoded_cyrillic_and_plus_spaces_are_decoded():
    record = parse_one(sample("lead_lead_hunter_ru.query"))
    assert record.person.name == "Иван Петров"
    assert record.interaction.subject == "Пойманный лид: 79161234567"
    assert record.interaction.lead.text.splitlines()[1] == "Промокод: 1674"


def test_additional_data_fields_are_kept_and_utm_fields_are_read():
    interaction = parse_one(sample("lead_lead_hunter_ru.query")).interaction
    assert interaction.lead.data["form"] == "Обратный звонок"
    assert interaction.lead.data["Город"] == "Москва"
    assert interaction.utm == {"utm_source": "yandex", "utm_campaign": "весна-2015"}
    assert interaction.page.url == "https://site.ru/landing?utm_source=yandex"


def test_the_responsible_manager_is_kept_as_the_agent():
    assert parse_one(sample("lead_lead_hunter_ru.query")).interaction.agent.id == "3"


@pytest.mark.parametrize("name, phone", [
    ("lead_lead_hunter_ru.query", "8 (916) 123-45-67"),
    ("lead_calltracking.query", "79990001122"),
    ("lead_jivosite.query", "+7 (495) 123-45-67 доб. 123"),
    ("lead_data_php_empty_array.query", "11230001122"),
])
def test_free_form_phones_are_kept_as_written(name, phone):
    assert parse_one(sample(name)).person.phones == [phone]


def test_a_bare_plus_before_the_phone_is_kept_as_the_country_code_sign():
    assert parse_one(sample("lead_unencoded.query")).person.phones == ["+79990001122"]


def test_an_unencoded_query_as_the_documentation_writes_it_is_read():
    record = parse_one(sample("lead_unencoded.query"))
    assert record.person.emails == ["email@mail.com"]
    assert record.interaction.page.url == "http://site.com/"
    assert record.interaction.occurred_at == utc(2015, 6, 28, 9, 12, 54)


def test_a_calltracking_lead_has_only_a_phone_and_its_title():
    record = parse_one(sample("lead_calltracking.query"))
    assert (record.person.name, record.person.emails) == (None, [])
    assert record.interaction.subject == "Звонок от 79990001122"
    assert record.interaction.page is None


def test_crlf_line_ends_in_text_are_kept_as_sent():
    text = parse_one(sample("lead_jivosite.query")).interaction.lead.text
    assert text.count("\r\n") == 2


def test_empty_strings_are_absent_values():
    record = parse_one(sample("lead_empty_fields.query"))
    assert record.person.is_empty
    interaction = record.interaction
    assert (interaction.subject, interaction.occurred_at, interaction.page) == (None, None, None)
    assert (interaction.lead.visit, interaction.lead.text, interaction.lead.data) == (None, None, {})
    assert interaction.extra == {}


def test_missing_keys_are_absent_values():
    record = parse_one(sample("lead_minimal.query"))
    assert record.person.is_empty
    assert record.interaction.lead.external_id == "94"
    assert record.interaction.lead.data == {}


def test_data_as_an_empty_php_array_means_no_data():
    interaction = parse_one(sample("lead_data_php_empty_array.query")).interaction
    assert (interaction.lead.data, interaction.extra) == ({}, {})


def test_data_that_is_not_json_is_kept_as_text_and_the_lead_still_counts():
    record = parse_one(sample("lead_data_not_json.query"))
    assert record.person.phones == ["+79161234567"]
    assert record.interaction.lead.data == {}
    assert record.interaction.extra["data_text"] == '{"page":"https:\\/\\/site.ru\\/'
    assert "not valid JSON" in record.interaction.extra["data_problem"]


@pytest.mark.parametrize(("data", "problem"), [
    ('{"visits": ' + "1" * 5000 + "}", "data cannot be read"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "data nests deeper than this service reads"),
], ids=["a number too long", "nested too deep"])
def test_data_json_cannot_read_is_kept_as_text_and_the_lead_still_counts(data, problem):
    record = parse_one(with_param(sample("lead.query"), "data", data))
    assert record.interaction.lead.external_id and record.interaction.lead.data == {}
    assert record.interaction.extra["data_problem"].startswith(problem)


def test_an_unreadable_created_date_leaves_the_time_unknown_and_keeps_the_text():
    interaction = parse_one(with_param(sample("lead.query"), "created_date", "yesterday")).interaction
    assert interaction.occurred_at is None
    assert interaction.extra["created_date_text"] == "yesterday"


def test_a_lead_is_an_open_conversation_state():
    assert parse_one(sample("lead.query")).interaction.state is ConversationState.OPEN


def test_a_message_becomes_a_note_on_the_order_it_names():
    record = parse_one(sample("message.query"))
    assert record.person.identities == [ProviderIdentity(kind="roistat.order", value="100500")]
    assert record.interaction.kind is InteractionKind.NOTE
    assert record.interaction.subject == "Повторная заявка"
    assert record.interaction.transcript[0].text == "Клиент снова оставил заявку через Ловец лидов"
    assert record.interaction.extra == {"order_id": "100500"}
    assert record.interaction.conversation_id == "order:100500"


def test_a_message_text_is_read_from_text_as_roistat_documents_it():
    record = parse_one(f"user={USER}&token={TOKEN}&action=message&leadId=155&title=Duplicated+lead"
                       "&text=Duplicated+lead+from+Ivan")
    assert record.interaction.transcript[0].text == "Duplicated lead from Ivan"


def test_two_notifications_for_one_order_differing_only_in_text_are_two_events():
    first = f"user={USER}&token={TOKEN}&action=message&leadId=155&title=Duplicated+lead&text=from+Ivan"
    second = f"user={USER}&token={TOKEN}&action=message&leadId=155&title=Duplicated+lead&text=from+Olga"
    assert roistat.dedup_key(get_request(first)) != roistat.dedup_key(get_request(second))


def test_a_message_without_lead_id_is_a_parse_error():
    with pytest.raises(ParseError, match="leadId"):
        roistat.parse(get_request(f"user={USER}&token={TOKEN}&action=message&message=hi"))


def test_a_task_becomes_a_note_with_its_deadline_in_utc():
    record = parse_one(sample("task.query"))
    assert record.interaction.kind is InteractionKind.NOTE
    assert record.interaction.transcript[0].text == "Перезвонить клиенту"
    assert record.interaction.extra == {"order_id": "100500", "deadline": "2019-01-01T11:11:11+00:00"}
    assert record.interaction.conversation_id == "order:100500"


def test_a_call_becomes_a_call_from_the_caller():
    record = parse_one(sample("call.query"))
    assert record.person.phones == ["79161234567"]
    assert record.person.identities == [ProviderIdentity(kind="roistat.visit", value="12345"),
                                        ProviderIdentity(kind="roistat.order", value="100500")]
    interaction = record.interaction
    assert (interaction.kind, interaction.external_id) == (InteractionKind.CALL, "12")
    assert interaction.occurred_at == utc(2019, 1, 1, 11, 11, 11)
    assert interaction.extra["status"] == "ANSWER" and interaction.extra["order_id"] == "100500"


@pytest.mark.parametrize("name", ["import_scheme.query", "export.query", "export_clients.query"])
def test_read_only_queries_produce_nothing_with_a_reason(name):
    with pytest.raises(IgnoreEvent, match="read-only query"):
        roistat.parse(get_request(sample(name)))


# --- dedup keys --------------------------------------------------------------------------------------------------

def test_the_dedup_key_of_a_lead_is_its_roistat_id():
    assert roistat.dedup_key(get_request(sample("lead.query"))) == "lead:90"


def test_the_dedup_key_of_a_poll_ignores_the_credentials():
    query = sample("export.query")
    assert roistat.dedup_key(get_request(query)) == roistat.dedup_key(get_request(with_param(query, "token", "x")))
    assert roistat.dedup_key(get_request(query)) != roistat.dedup_key(get_request(with_param(query, "offset", "5")))


def test_a_lead_without_an_id_is_deduplicated_by_the_whole_request():
    query = f"user={USER}&token={TOKEN}&action=lead&phone=79990001122"
    key = roistat.dedup_key(get_request(query))
    assert key.startswith("sha256:")
    assert key != roistat.dedup_key(get_request(query.replace("1122", "1133")))
