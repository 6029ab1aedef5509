"""JivoChat payloads whatever shape Jivo writes them in: ids as numbers or text, empty and null values, objects
of the wrong type, UTM in two forms, and any type drift in any field. Pure parsing: no database.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.providers import IgnoreEvent, ParseError
from tests.conftest import payload
from tests.providers.jivo_support import identities, parse_one, provider, request_of, sample


def test_ids_written_as_numbers_read_as_text():
    record = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    assert identities(record)["jivo.visitor_number"] == "2199"
    assert record.interaction.conversation_id == "jivo:3948:7641"
    assert record.interaction.agent.id == "2016"


def test_a_user_token_is_kept_as_an_attribute_and_null_or_missing_is_none():
    with_token = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    null_token = parse_one(payload("jivo/chat_accepted.json"))
    missing_token = parse_one(payload("jivo/chat_finished.json"))
    assert with_token.person.attributes["user_token"] == "3c077929b8_12175"
    assert "user_token" not in null_token.person.attributes | missing_token.person.attributes


def test_a_user_token_is_no_identity_the_site_may_pass_the_same_one_for_everybody():
    record = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    assert not any(kind == "jivo.user_token" for kind in identities(record))


def test_the_visitor_number_of_a_chat_is_also_the_client_id_of_client_events():
    chat = parse_one(payload("jivo/chat_accepted.json"))
    attributes = parse_one({**sample("client_attribute_updated.json"), "client_id": 2198})
    assert identities(chat) == identities(attributes) == {"jivo.client_id": "2198", "jivo.visitor_number": "2198"}


def test_cyrillic_names_and_free_form_phones_are_kept_as_written():
    record = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    assert record.person.name == "Анна Петрова"
    assert record.person.phones == ["8 (916) 123-45-67 доб. 12"]
    assert record.interaction.agent.name == "Ольга Смирнова"
    assert record.interaction.page.title == "Диваны — купить в Москве"


def test_empty_strings_are_absent_values():
    record = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    assert record.person.emails == []
    assert record.person.description is None


def test_null_empty_objects_and_empty_arrays_read_as_absent():
    record = parse_one(payload("jivo/chat_finished_cyrillic_two_agents.json"))
    assert record.person.company is None and "category" not in record.person.attributes
    assert "assigned_agent" not in record.interaction.extra
    assert set(record.interaction.geo) == {"ip"}


def test_a_minimal_chat_with_every_optional_key_missing_still_parses():
    record = parse_one(payload("jivo/chat_accepted_minimal.json"))
    assert identities(record) == {"jivo.client_id": "2200", "jivo.visitor_number": "2200"}
    chat = record.interaction
    assert (chat.page, chat.utm, chat.geo, chat.tags, chat.subject) == (None, {}, {}, [], None)


def test_a_sub_object_of_the_wrong_type_reads_as_empty_instead_of_failing():
    body = {**sample("chat_accepted.json"), "visitor": "John", "session": [], "tags": {"0": "VIP"}, "agent": 5}
    record = parse_one(body)
    assert record.person.is_empty
    assert record.interaction.tags == ["VIP"] and record.interaction.agent is None


def test_utm_from_the_pipe_string_alone_is_decoded():
    chat = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json")).interaction
    assert chat.utm == {"source": "yandex", "medium": "cpc", "campaign": "весна_2024", "term": "купить диван"}


def test_utm_from_utm_json_alone_skips_empty_values():
    chat = parse_one(payload("jivo/chat_finished_cyrillic_two_agents.json")).interaction
    assert chat.utm == {"source": "yandex", "medium": "cpc", "campaign": "весна_2024"}


def test_utm_json_wins_and_the_pipe_string_fills_what_it_lacks():
    body = sample("chat_accepted.json")
    body["session"]["utm"] = "utm_source=bing|utm_medium=cpc|utm_content=side|keyword"
    body["session"]["utm_json"] = {"source": "google", "campaign": "spring"}
    chat = parse_one(body).interaction
    assert chat.utm == {"source": "google", "campaign": "spring", "medium": "cpc", "content": "side"}


def test_an_event_name_with_capitals_or_spaces_is_recognised():
    record = parse_one({**sample("chat_accepted.json"), "event_name": " Chat_Accepted "})
    assert record.event_type == "chat_accepted"
    with pytest.raises(IgnoreEvent):
        provider.parse(request_of({"event_name": "completed task", "task_id": 2}))


SAMPLE_EVENTS = sorted(path.name for path in (Path(__file__).parents[1] / "payloads" / "jivo").glob("*.json")
                       if not path.name.endswith(".response.json"))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10)


def _drifted(value, data):
    """A sample with some values, at any depth, replaced by any JSON value or dropped."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            roll = data.draw(st.integers(0, 9))
            if roll == 0 and key != "event_name":
                continue
            out[key] = data.draw(JSON_VALUES) if roll == 1 and key != "event_name" else _drifted(item, data)
        return out
    if isinstance(value, list):
        return [data.draw(JSON_VALUES) if data.draw(st.integers(0, 9)) == 0 else _drifted(item, data)
                for item in value]
    return value


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_type_drift_in_any_field_parses_or_fails_for_a_stated_reason_and_keeps_a_dedup_key(data):
    body = _drifted(sample(data.draw(st.sampled_from(SAMPLE_EVENTS))), data)
    request = request_of(body)
    assert provider.dedup_key(request).startswith("jivo:")
    try:
        provider.parse(request)
    except IgnoreEvent:
        pass
    except ParseError as exc:
        assert "not a readable Jivo event" not in str(exc)
