"""LiveChat redeliveries: retries and copies of one event are one stored event, and what makes a new event.

The HTTP tests run on SQLite and PostgreSQL (the `database_url` parametrisation); the dedup-key tests call the
provider on a `RawRequest`, as the route does.
"""
from __future__ import annotations

import json

from tests.conftest import payload
from tests.providers.livechat_support import basic, edited, key, post, signed


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
