"""LiveChat webhooks, v3.x and legacy v2: what LiveChat sends (tests/payloads/livechat/) and what we make of it.

Tests that go through HTTP, the event store and processing run on SQLite and PostgreSQL (the `database_url`
parametrisation); tests of dedup keys and of parsing call the provider on a `RawRequest`, exactly as the route and
the worker do.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Callable

import pytest

from crm_sync.contacts import list_interactions, lookup_card
from crm_sync.model import CanonicalRecord, ConversationState, InteractionKind, Person, ProviderIdentity
from ingest.providers import get_provider
from ingest.providers.base import IgnoreEvent, ParseError, RawRequest
from ingest.settings import ConfigError, settings_from_dict
from tests.conftest import payload

SECRET = "lc-webhook-secret-for-tests-0123456789"
USER, PASSWORD = "livechat", "legacy-password-for-tests-0123"
BOTH, V3_ONLY, LEGACY_ONLY = "livechat-main", "livechat-v3", "livechat-legacy"
SOURCES = {
    BOTH: {"provider": "livechat", "secret_key": SECRET, "basic_auth": f"{USER}:{PASSWORD}"},
    V3_ONLY: {"provider": "livechat", "secret_key": SECRET},
    LEGACY_ONLY: {"provider": "livechat", "basic_auth": f"{USER}:{PASSWORD}"},
}
CUSTOMER = "b7eff798-f8df-4364-8059-649c35c9ed0c"  # the customer of the shared samples
provider = get_provider("livechat")


# --- helpers -------------------------------------------------------------------------------------------------------

def signed(name: str, secret: str = SECRET) -> bytes:
    """A v3 sample as LiveChat sends it for a webhook registered with `secret`."""
    return payload(f"livechat/{name}").replace(b'"<secret_key>"', json.dumps(secret).encode())


def edited(name: str, change: Callable[[dict], None]) -> bytes:
    body = json.loads(signed(name) if not name.startswith("legacy_") else payload(f"livechat/{name}"))
    change(body)
    return json.dumps(body, ensure_ascii=False).encode()


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def raw(body: bytes, headers: dict[str, str] | None = None) -> RawRequest:
    return RawRequest("POST", f"/hooks/{BOTH}", "", {"Content-Type": "application/json", **(headers or {})}, body,
                      "application/json")


def key(body: bytes) -> str:
    return provider.dedup_key(raw(body))


def record(body: bytes) -> CanonicalRecord:
    records = provider.parse(raw(body))
    assert len(records) == 1
    return records[0]


@pytest.fixture
def livechat(provider_harness):
    return provider_harness(SOURCES)


def post(harness, body: bytes, source: str = BOTH, headers: dict[str, str] | None = None):
    return harness.client.post(f"/hooks/{source}", data=body,
                               headers={"Content-Type": "application/json", **(headers or {})})


def source_settings(**fields):
    return settings_from_dict({"sources": {"lc": {"provider": "livechat", **fields}}}, env={}).sources["lc"]


# --- authentication (HTTP, both databases) ------------------------------------------------------------------------

def test_v3_webhook_with_the_right_secret_key_is_stored_and_answered_ok(livechat):
    response = post(livechat, signed("incoming_chat.json"))
    assert (response.status_code, response.get_json()) == (200, {"ok": True})
    assert [event.dedup_key for event in livechat.events()] == [key(signed("incoming_chat.json"))]


DEEPLY_NESTED = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"


def test_a_deeply_nested_body_with_basic_credentials_is_stored_and_goes_dead_with_the_reason(livechat):
    assert post(livechat, DEEPLY_NESTED, headers=basic()).status_code == 200
    [event] = livechat.process_all()
    assert event.body == DEEPLY_NESTED
    assert (event.status, event.error_class) == ("dead", "parse_error")


def test_a_deeply_nested_body_without_credentials_gets_401(livechat):
    assert post(livechat, DEEPLY_NESTED).status_code == 401


def test_v3_webhook_with_a_wrong_secret_key_gets_401_and_is_not_stored(livechat):
    response = post(livechat, signed("incoming_chat.json", secret="someone-elses-secret"))
    assert (response.status_code, response.get_json()["error"]) == (401, "authentication_failed")
    assert livechat.events() == []


def test_v3_webhook_without_a_secret_key_gets_401(livechat):
    response = post(livechat, edited("incoming_chat.json", lambda body: body.pop("secret_key")))
    assert response.status_code == 401
    assert livechat.events() == []


def test_v3_webhook_is_not_authenticated_by_basic_auth(livechat):
    response = post(livechat, signed("thread_tagged.json", secret="wrong"), headers=basic())
    assert response.status_code == 401
    assert livechat.events() == []


def test_v3_webhook_to_a_source_without_secret_key_gets_401(livechat):
    response = post(livechat, signed("thread_tagged.json"), source=LEGACY_ONLY, headers=basic())
    assert response.status_code == 401
    assert livechat.events() == []


def test_legacy_webhook_with_the_right_basic_auth_is_stored_and_answered_ok(livechat):
    response = post(livechat, payload("livechat/legacy_chat_ended.json"), source=LEGACY_ONLY, headers=basic())
    assert (response.status_code, response.get_json()) == (200, {"ok": True})
    assert len(livechat.events()) == 1


def test_legacy_webhook_with_a_wrong_password_gets_401(livechat):
    response = post(livechat, payload("livechat/legacy_chat_ended.json"), headers=basic(password="guess"))
    assert response.status_code == 401
    assert livechat.events() == []


def test_legacy_webhook_without_basic_auth_gets_401_whatever_its_token_says(livechat):
    # `token` and `license_id` in a legacy body are API credentials LiveChat hands out, not a signature.
    response = post(livechat, payload("livechat/legacy_chat_ended.json"))
    assert response.status_code == 401
    assert livechat.events() == []


def test_legacy_webhook_to_a_source_without_basic_auth_gets_401(livechat):
    response = post(livechat, payload("livechat/legacy_chat_ended.json"), source=V3_ONLY, headers=basic())
    assert response.status_code == 401
    assert livechat.events() == []


def test_malformed_basic_auth_header_gets_401(livechat):
    response = post(livechat, payload("livechat/legacy_chat_ended.json"), headers={"Authorization": "Basic %%%"})
    assert response.status_code == 401


def test_unparseable_body_with_the_right_basic_auth_is_stored_and_goes_dead(livechat):
    response = post(livechat, b'{"event_type": "chat_started", "chat": {', headers=basic())
    assert (response.status_code, response.get_json()) == (200, {"ok": True})
    [event] = livechat.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "not valid JSON" in event.error_message


def test_unparseable_body_carrying_the_right_secret_key_is_stored_and_goes_dead(livechat):
    response = post(livechat, b'{"action": "incoming_chat", "secret_key": "' + SECRET.encode() + b'", ',
                    source=V3_ONLY)
    assert response.status_code == 200
    [event] = livechat.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")


def test_unparseable_body_with_a_wrong_secret_key_gets_401(livechat):
    response = post(livechat, b'{"action": "incoming_chat", "secret_key": "guess", ', source=V3_ONLY)
    assert response.status_code == 401
    assert livechat.events() == []


def test_unparseable_body_without_any_credential_gets_401(livechat):
    response = post(livechat, b'{"action": "incoming_chat", "chat": {')
    assert response.status_code == 401
    assert livechat.events() == []


def test_unparseable_body_to_a_secret_key_only_source_gets_401_even_with_basic_auth(livechat):
    response = post(livechat, b"not json", source=V3_ONLY, headers=basic())
    assert response.status_code == 401
    assert livechat.events() == []


def test_json_that_is_not_a_livechat_webhook_goes_dead_with_the_reason(livechat):
    response = post(livechat, json.dumps({"secret_key": SECRET, "hello": "world"}).encode())
    assert response.status_code == 200
    [event] = livechat.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "neither `action`" in event.error_message


def test_the_authorization_header_is_never_stored(livechat):
    post(livechat, payload("livechat/legacy_chat_ended.json"), headers=basic())
    [event] = livechat.events()
    assert "authorization" not in {name.lower() for name in event.headers}
    assert event.headers.get("Content-Type") == "application/json"


def test_get_is_not_a_livechat_webhook(livechat):
    assert livechat.client.get(f"/hooks/{BOTH}").status_code == 405


# --- settings -----------------------------------------------------------------------------------------------------

def test_a_source_needs_secret_key_or_basic_auth():
    with pytest.raises(ConfigError, match="secret_key .*and/or basic_auth"):
        source_settings()


@pytest.mark.parametrize("value", ["livechat", "livechat:", ":password", ""])
def test_basic_auth_must_be_user_colon_password(value):
    with pytest.raises(ConfigError, match="basic_auth"):
        source_settings(basic_auth=value)


def test_a_blank_secret_key_is_refused():
    with pytest.raises(ConfigError, match="secret_key is empty"):
        source_settings(secret_key="  ")


def test_the_starter_source_is_a_valid_v3_source():
    settings = source_settings(**{k: v for k, v in provider.starter_source("t0ken-t0ken").items() if k != "provider"})
    assert settings.secret_key.get_secret_value() == "t0ken-t0ken"


def test_setup_instructions_give_the_secret_key_and_the_legacy_url_with_escaped_credentials():
    settings = source_settings(secret_key="s3cret", basic_auth="lc:p@ss:w/rd")
    text = provider.setup_instructions("https://crm.example.com/hooks/lc", settings)
    assert "Chat webhooks" in text and "Secret key = s3cret" in text
    assert "https://lc:p%40ss%3Aw%2Frd@crm.example.com/hooks/lc" in text


# --- redeliveries and dedup (HTTP, both databases) -----------------------------------------------------------------

def test_v3_retries_are_one_event_and_each_gets_ok(livechat):
    responses = [post(livechat, signed("incoming_event_message.json")) for _ in range(4)]  # first try + 3 retries
    assert {(r.status_code, json.dumps(r.get_json())) for r in responses} == {(200, '{"ok": true}')}
    [event] = livechat.events()
    assert event.duplicate_count == 3


def test_legacy_retries_are_one_event(livechat):
    for _ in range(10):
        post(livechat, payload("livechat/legacy_chat_ended.json"), headers=basic())
    [event] = livechat.events()
    assert event.duplicate_count == 9


def test_session_fields_update_sent_for_each_active_chat_is_one_event(livechat):
    post(livechat, signed("customer_session_fields_updated_contacts.json"))
    post(livechat, signed("customer_session_fields_updated_other_chat.json"))
    [event] = livechat.process_all()
    assert (event.status, event.duplicate_count) == ("processed", 1)


def test_a_new_message_in_the_same_thread_is_a_new_event(livechat):
    post(livechat, signed("incoming_event_message.json"))
    post(livechat, signed("incoming_event_message_next.json"))
    assert [event.duplicate_count for event in livechat.events()] == [0, 0]


# --- dedup keys ---------------------------------------------------------------------------------------------------

def test_the_same_event_from_two_registered_webhooks_has_one_key():
    other_webhook = edited("incoming_event_message.json", lambda body: body.update(webhook_id="another-webhook"))
    assert key(other_webhook) == key(signed("incoming_event_message.json"))


def test_incoming_chat_for_the_customers_next_thread_is_a_new_event():
    assert key(signed("incoming_chat_next_thread.json")) != key(signed("incoming_chat.json"))


def test_changed_session_fields_are_a_new_event():
    def new_phone(body):
        body["payload"]["session_fields"][1] = {"phone": "+7 (921) 555-09-09"}
    assert key(edited("customer_session_fields_updated_contacts.json", new_phone)) != \
        key(signed("customer_session_fields_updated_contacts.json"))


def test_a_second_transfer_to_another_agent_is_a_new_event():
    def to_jones(body):
        body["payload"]["transferred_to"]["agent_ids"] = ["jones@example.com"]
    assert key(edited("chat_transferred.json", to_jones)) != key(signed("chat_transferred.json"))


def test_the_same_chat_in_another_licence_is_a_new_event():
    def other_org(body):
        body["organization_id"] = "7d1c8c66-0b5e-4c02-a8f4-2f6a1b0c9e11"
    assert key(edited("chat_deactivated.json", other_org)) != key(signed("chat_deactivated.json"))


def test_legacy_chat_started_and_ended_are_two_events():
    ended = payload("livechat/legacy_chat_ended.json")
    started = edited("legacy_chat_ended.json", lambda body: body.update(event_type="chat_started"))
    assert key(started) != key(ended)


def test_legacy_chat_changed_with_new_tags_is_a_new_event():
    retagged = edited("legacy_chat_changed.json", lambda body: body["chat"].update(tags=["sales", "vip"]))
    assert key(retagged) != key(payload("livechat/legacy_chat_changed.json"))


def test_legacy_redelivery_with_a_rotated_api_token_is_the_same_event():
    rotated = edited("legacy_chat_ended.json", lambda body: body.update(token="0" * 32))
    assert key(rotated) == key(payload("livechat/legacy_chat_ended.json"))


def test_garbage_bodies_are_keyed_by_their_hash():
    assert key(b"not json") == key(b"not json") != key(b"not json either")


# --- v3 parsing ---------------------------------------------------------------------------------------------------

def test_incoming_chat_brings_the_customer_with_session_fields():
    person = record(signed("incoming_chat.json")).person
    assert (person.name, person.emails, person.phones) == \
        ("Thomas Anderson", ["t.anderson@example.com"], ["+18008529001"])
    assert person.identities == [ProviderIdentity(kind="livechat.customer_id", value=CUSTOMER)]
    assert person.attributes == {"custom_key": "custom_value", "another_custom_key": "another_custom_value"}


def test_incoming_chat_is_a_chat_with_transcript_agent_page_geo_and_tags():
    interaction = record(signed("incoming_chat.json")).interaction
    assert (interaction.kind, interaction.conversation_id) == (InteractionKind.CHAT, "livechat:PJ0MRSHTDG:K600PKZON8")
    assert [(m.author, m.text, m.author_name) for m in interaction.transcript] == \
        [("visitor", "Hello there", "Thomas Anderson")]
    assert (interaction.agent.id, interaction.agent.name) == ("smith@example.com", "Agent Smith")
    assert (interaction.page.url, interaction.page.title) == ("https://www.livechat.com/tour", "LiveChat - Tour")
    assert interaction.geo["city"] == "Wroclaw" and interaction.geo["country_code"] == "PL"
    assert interaction.tags == ["sales"]
    assert interaction.extra["prechat"]["Company industry"] == "automotive, it"


def test_incoming_chat_waiting_in_the_queue_is_queued():
    assert record(signed("incoming_chat.json")).interaction.state == ConversationState.QUEUED


def test_incoming_chat_not_in_a_queue_is_open():
    assert record(signed("incoming_chat_cyrillic.json")).interaction.state == ConversationState.OPEN


def test_cyrillic_text_and_free_form_phones_are_kept_as_written():
    chat = record(signed("incoming_chat_cyrillic.json"))
    assert chat.person.name == "Мария Иванова"
    assert chat.person.phones == ["8 (916) 123-45-67", "+7 916 123-45-67 доб. 12"]  # session field, pre-chat question
    assert chat.interaction.transcript[0].text == "Здравствуйте! Есть ли диван «Милан» в сером цвете?"
    assert chat.interaction.geo["city"] == "Москва"


def test_a_customer_without_email_and_a_blank_prechat_email_have_no_email():
    assert record(signed("incoming_chat_cyrillic.json")).person.emails == []


def test_livechat_system_notices_stay_out_of_the_transcript():
    transcript = record(signed("incoming_chat_cyrillic.json")).interaction.transcript
    assert [m.author for m in transcript] == ["visitor", "agent"]


def test_utm_tags_come_from_the_landing_page():
    assert record(signed("incoming_chat_cyrillic.json")).interaction.utm == \
        {"source": "yandex", "medium": "cpc", "campaign": "весна"}


def test_v33_envelope_with_integer_license_id_is_parsed():
    chat = record(signed("incoming_chat_license_id.json"))
    assert chat.interaction.extra["license_id"] == "12345678"
    assert "organization_id" not in chat.interaction.extra


def test_incoming_chat_with_restricted_access_and_a_bare_customer_still_names_the_customer():
    chat = record(signed("incoming_chat_license_id.json"))
    assert chat.person.identities == [ProviderIdentity(kind="livechat.customer_id",
                                                       value="8c1f0a2e-3d4b-4e5f-8a9b-0c1d2e3f4a5b")]
    assert (chat.person.name, chat.interaction.transcript, chat.interaction.page) == (None, [], None)


def test_customer_message_is_a_message_from_the_visitor_in_its_thread():
    message = record(signed("incoming_event_message_next.json"))
    assert (message.interaction.kind, message.interaction.conversation_id) == \
        (InteractionKind.MESSAGE, "livechat:PJ0MRSHTDG:K600PKZON8")
    [line] = message.interaction.transcript
    assert (line.author, line.text, line.external_id) == ("visitor", "Можно оплатить картой? 💳", "K600PKZON8_3")
    assert line.at == datetime(2017, 10, 12, 15, 20, 2, 331000, tzinfo=timezone.utc)
    assert message.person.identities == [ProviderIdentity(kind="livechat.customer_id", value=CUSTOMER)]


def test_agent_message_names_the_agent_and_no_person():
    message = record(signed("incoming_event_agent_message.json"))
    assert message.interaction.transcript[0].author == "agent"
    assert (message.interaction.agent.id, message.interaction.agent.email) == ("smith@example.com",) * 2
    assert message.person.is_empty


def test_a_message_in_incoming_chat_and_its_own_incoming_event_share_the_message_id():
    in_chat = record(signed("incoming_chat.json")).interaction.transcript[0]
    on_its_own = record(signed("incoming_event_message.json")).interaction.transcript[0]
    assert (in_chat.external_id, in_chat.text) == (on_its_own.external_id, on_its_own.text)


def test_file_upload_is_a_message_with_the_file_name_and_link():
    [line] = record(signed("incoming_event_file.json")).interaction.transcript
    assert line.text == "invoice-4411.pdf https://cdn.files-text.com/api/lc/att/12345678/abcdef/invoice-4411.pdf"


def test_system_message_event_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="system_message"):
        provider.parse(raw(signed("incoming_event_system_message.json")))


def test_prechat_form_is_a_contact_update_with_name_email_and_phone():
    form = record(signed("incoming_event_filled_form.json"))
    assert form.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert (form.person.name, form.person.emails, form.person.phones) == \
        ("Иван Петров", ["ivan.petrov@example.ru"], ["8 (916) 765-43-21"])
    assert form.person.identities[0].value == "3e9a7c55-1b2d-4f6e-9a8b-7c6d5e4f3a2b"


def test_prechat_answers_are_kept_and_unanswered_fields_left_out():
    answers = record(signed("incoming_event_filled_form.json")).interaction.extra["answers"]
    assert answers["Company name"] == "ООО «Ромашка»" and answers["Topic"] == "Доставка"
    assert "How can we help?" not in answers


def test_a_company_name_question_is_not_taken_for_the_persons_name():
    assert record(signed("incoming_event_filled_form.json")).person.name == "Иван Петров"


def test_a_question_about_an_iphone_is_not_taken_for_a_phone_number():
    def iphone_question(body):
        body["payload"]["event"]["fields"][2] = {"type": "question", "id": "1", "label": "Your iPhone model",
                                                 "answer": "iPhone 15 Pro 256 GB"}
    assert record(edited("incoming_event_filled_form.json", iphone_question)).person.phones == []


def test_chat_deactivated_closes_the_thread():
    closed = record(signed("chat_deactivated.json"))
    assert (closed.interaction.state, closed.interaction.conversation_id) == \
        (ConversationState.CLOSED, "livechat:PJ0MRSHTDG:K600PKZON8")
    assert closed.interaction.extra["closed_by"] == CUSTOMER


def test_chat_closed_by_the_router_has_no_closing_user():
    closed = record(signed("chat_deactivated_by_router.json"))
    assert closed.interaction.extra["closed_by"] == "router"
    assert closed.person.is_empty and closed.interaction.agent is None


def test_chat_transferred_to_an_agent_is_assigned_to_that_agent():
    transfer = record(signed("chat_transferred.json")).interaction
    assert (transfer.state, transfer.agent.id) == (ConversationState.ASSIGNED, "smith@example.com")
    assert transfer.extra["transfer_reason"] == "manual"


def test_chat_transferred_into_a_group_queue_is_queued():
    transfer = record(signed("chat_transferred_to_queue.json")).interaction
    assert (transfer.state, transfer.agent, transfer.extra["group_ids"]) == (ConversationState.QUEUED, None, ["19"])


def test_transfer_of_an_inactive_chat_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="inactive chat"):
        provider.parse(raw(signed("chat_transferred_inactive.json")))


def test_thread_tagged_adds_the_tag_to_the_thread():
    tagged = record(signed("thread_tagged.json")).interaction
    assert (tagged.kind, tagged.tags, tagged.state) == (InteractionKind.CHAT, ["bug_report"], None)


def test_thread_untagged_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="never removed"):
        provider.parse(raw(signed("thread_untagged.json")))


def test_session_fields_named_like_contacts_update_the_contact():
    update = record(signed("customer_session_fields_updated_contacts.json"))
    assert update.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert (update.person.name, update.person.emails, update.person.phones) == \
        ("Анна Кузнецова", ["anna.k@example.com"], ["+7 (921) 555-01-02"])
    assert update.person.attributes["plan"] == "premium"


def test_session_fields_update_is_not_tied_to_one_of_the_chats():
    # It is kept once for all the customer's active chats, so naming the first copy's chat would mislead.
    assert record(signed("customer_session_fields_updated_contacts.json")).interaction.conversation_id is None


def test_unknown_v3_action_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="routing_status_set"):
        provider.parse(raw(signed("routing_status_set.json")))


def test_incoming_chat_without_a_chat_is_a_parse_error():
    with pytest.raises(ParseError, match="payload.chat.id"):
        provider.parse(raw(edited("incoming_chat.json", lambda body: body["payload"].pop("chat"))))


def test_non_object_payload_is_a_parse_error():
    with pytest.raises(ParseError, match="payload"):
        provider.parse(raw(edited("thread_tagged.json", lambda body: body.update(payload=["bug_report"]))))


def test_values_of_unexpected_types_are_tolerated():
    def odd_types(body):
        customer = body["payload"]["chat"]["users"][0]
        customer.update(name=None, email=["x"], phone_number=79161234567, session_fields="oops", visit=[])
        body["payload"]["chat"]["thread"].update(tags=None, events={"not": "a list"})
    chat = record(edited("incoming_chat.json", odd_types))
    assert (chat.person.name, chat.person.emails, chat.person.phones) == (None, [], ["79161234567"])
    assert (chat.interaction.transcript, chat.interaction.tags) == ([], [])


# --- legacy v2 parsing --------------------------------------------------------------------------------------------

def test_legacy_chat_started_opens_the_chat_with_visitor_and_transcript():
    started = record(payload("livechat/legacy_chat_started.json"))
    assert (started.interaction.state, started.interaction.conversation_id) == \
        (ConversationState.OPEN, "livechat:NX9F2KD8Q1")
    assert (started.person.name, started.person.phones) == ("Сергей", ["+7 (495) 123-45-67"])
    assert started.person.identities == [ProviderIdentity(kind="livechat.visitor_id", value="S1709630001.9c1e2f3a4b")]
    assert started.interaction.transcript[0].text == "Добрый вечер, подскажите по доставке в Казань"


def test_legacy_skipped_pre_chat_survey_leaves_no_answers():
    assert "pre_chat_survey" not in record(payload("livechat/legacy_chat_started.json")).interaction.extra


def test_legacy_chat_ended_closes_the_chat_with_pre_chat_survey_answers():
    ended = record(payload("livechat/legacy_chat_ended.json"))
    assert ended.interaction.state == ConversationState.CLOSED
    assert ended.interaction.occurred_at == datetime.fromtimestamp(1358939109, tz=timezone.utc)
    assert ended.interaction.extra["pre_chat_survey"]["What are your favourite music bands?"] == \
        "Deep Purple, Guns N' Roses"
    assert (ended.person.name, ended.person.emails) == ("Mary Brown", ["mary.brown@email.com"])
    assert ended.person.attributes == {"Customer ID": "POQ51023XZA"}


def test_legacy_supervisor_whispers_stay_out_of_the_transcript():
    transcript = record(payload("livechat/legacy_chat_ended.json")).interaction.transcript
    assert [(m.author, m.text) for m in transcript] == [("agent", "Hello"), ("visitor", "How are you?")]


def test_legacy_chat_changed_carries_the_tags_without_changing_the_state():
    changed = record(payload("livechat/legacy_chat_changed.json")).interaction
    assert (changed.state, changed.tags) == (None, ["sales", "support", "feedback"])


def test_legacy_visitor_queued_is_a_queued_chat_for_the_visitor():
    queued = record(payload("livechat/legacy_visitor_queued.json"))
    assert (queued.interaction.state, queued.person.emails) == (ConversationState.QUEUED, ["mary.brown@email.com"])


def test_legacy_ticket_created_is_a_ticket_for_the_requester():
    ticket = record(payload("livechat/legacy_ticket_created.json"))
    assert (ticket.interaction.kind, ticket.interaction.external_id, ticket.interaction.subject) == \
        (InteractionKind.TICKET, "CCWWM", "Welcome")
    assert (ticket.person.name, ticket.person.emails) == ("Mary Brown", ["mary.brown@email.com"])
    assert (ticket.interaction.agent.name, ticket.interaction.tags) == ("Gregory", ["support"])
    assert ticket.interaction.extra["source_chat_id"] == "NO4Y5FAERW"


def test_legacy_canned_response_change_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="canned_response_changed"):
        provider.parse(raw(payload("livechat/legacy_canned_response_changed.json")))


# --- the whole way: HTTP, store, processing (both databases) -------------------------------------------------------

def test_every_shared_sample_is_processed_or_ignored_never_dead(livechat):
    names = ["incoming_chat.json", "chat_deactivated.json", "customer_session_fields_updated.json",
             "thread_tagged.json"]
    for name in names:
        assert post(livechat, signed(name)).status_code == 200
    for name in ["legacy_chat_changed.json", "legacy_chat_ended.json", "legacy_ticket_created.json",
                 "legacy_visitor_queued.json"]:
        assert post(livechat, payload(f"livechat/{name}"), headers=basic()).status_code == 200
    assert {event.status for event in livechat.process_all()} == {"processed"}


def test_processed_incoming_chat_keeps_its_records_on_the_event(livechat):
    post(livechat, signed("incoming_chat_cyrillic.json"))
    [event] = livechat.process_all()
    [stored] = [CanonicalRecord.model_validate(r) for r in event.result["records"]]
    assert stored == record(signed("incoming_chat_cyrillic.json"))


def test_unknown_v3_action_is_answered_ok_and_ends_ignored_with_the_reason(livechat):
    response = post(livechat, signed("routing_status_set.json"))
    assert (response.status_code, response.get_json()) == (200, {"ok": True})
    [event] = livechat.process_all()
    assert (event.status, event.error_class) == ("ignored", "ignored")
    assert "routing_status_set" in event.error_message


def test_a_thread_from_incoming_chat_to_chat_deactivated_is_one_closed_conversation(livechat):
    for name in ["incoming_chat_cyrillic.json", "chat_deactivated_by_router.json"]:
        post(livechat, signed(name))
    assert {event.status for event in livechat.process_all()} == {"processed"}
    with livechat.runtime.sessions() as session:
        total, [conversation] = list_interactions(session, provider="livechat")
        card = lookup_card(session, Person(phones=["+7 916 123-45-67"]), "RU")
    assert (total, conversation.conversation_id, conversation.state) == \
        (1, "livechat:RZ4T1XKQ2B:RZ4T1XKQ3C", "closed")
    assert card is not None and card.name == "Мария Иванова"


def test_the_customers_next_thread_is_a_new_conversation_of_the_same_contact(livechat):
    for name in ["incoming_chat.json", "chat_deactivated.json", "incoming_chat_next_thread.json"]:
        post(livechat, signed(name))
    livechat.process_all()
    with livechat.runtime.sessions() as session:
        _, conversations = list_interactions(session, provider="livechat")
    assert sorted((c.conversation_id, c.state) for c in conversations) == [
        ("livechat:PJ0MRSHTDG:K600PKZON8", "closed"), ("livechat:PJ0MRSHTDG:K600PKZOO8", "queued")]
    assert len({c.contact_id for c in conversations}) == 1
