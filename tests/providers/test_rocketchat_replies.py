"""Rocket.Chat replies: what each delivery is answered (the room's conversation id, echoed back later as crmData),
and how a body we cannot use is acknowledged, stored and ends dead with the reason.

Every test here runs on SQLite and PostgreSQL (the `database_url` parametrisation).
"""
from __future__ import annotations

import json

from tests.providers.rocketchat_support import body_of, changed, post


def test_a_room_event_is_answered_exactly_200_with_a_small_json_body_naming_the_conversation(rocket):
    response = post(rocket, "LivechatSessionStart.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.data.strip() == b'{"ok":true,"data":{"conversation_id":"rocketchat:Tc5SyBZHovD4k8BXv"}}'


def test_every_delivery_for_one_room_gets_the_same_reply_bytes(rocket):
    replies = {post(rocket, name).data for name in
               ("LivechatSessionStart.json", "Message.json", "Message.json", "Message.crmdata_text.json",
                "LivechatSession.json", "LivechatEdit.json")}
    assert len(replies) == 1


def test_the_crm_data_later_webhooks_echo_is_our_reply_for_the_room(rocket):
    reply = post(rocket, "Message.json")
    assert body_of("Message.crmdata_text.json")["crmData"].encode() == reply.data
    assert body_of("Message.crmdata_object.json")["crmData"] == reply.get_json()["data"]  # servers before 2023


def test_a_room_id_with_a_lone_surrogate_is_echoed_escaped_as_it_came(rocket):
    """JSON's "\\ud800" is not UTF-8 text: the reply carries it escaped, where encoding it raw failed with a 500."""
    body = json.dumps(changed("LivechatSessionStart.json", _id="room-\ud800")).encode()  # ensure_ascii: escaped
    responses = [post(rocket, body) for _ in range(2)]
    assert [response.status_code for response in responses] == [200, 200]
    assert responses[0].data.strip() == b'{"ok":true,"data":{"conversation_id":"rocketchat:room-\\ud800"}}'
    assert [event.duplicate_count for event in rocket.events()] == [1]


def test_an_offline_message_has_no_room_and_is_answered_with_a_plain_ok(rocket):
    response = post(rocket, "LivechatOfflineMessage.json")
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}


def test_an_unparseable_body_is_acknowledged_stored_and_goes_dead_with_the_reason(rocket):
    response = post(rocket, b'{"type": "Message", "_id": ')
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}
    (event,) = rocket.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "not valid JSON" in event.error_message


def test_an_unknown_type_is_stored_and_goes_dead_naming_the_type(rocket):
    assert post(rocket, changed("Message.json", type="LivechatSessionArchived")).status_code == 200
    (event,) = rocket.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "'LivechatSessionArchived'" in event.error_message


def test_a_malformed_visitor_goes_dead_naming_the_field(rocket):
    post(rocket, changed("Message.json", visitor="guest-3"))
    (event,) = rocket.process_all()
    assert event.status == "dead"
    assert "visitor" in event.error_message


def test_a_room_event_without_a_room_id_goes_dead(rocket):
    post(rocket, changed("LivechatSession.json", _id=""))
    (event,) = rocket.process_all()
    assert event.status == "dead"
    assert "room _id" in event.error_message
