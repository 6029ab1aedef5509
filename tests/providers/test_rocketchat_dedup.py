"""Rocket.Chat redeliveries: Rocket.Chat retries with the same body and carries no delivery id, so the dedup key
tells a retry from a new event.

The HTTP tests run on SQLite and PostgreSQL; the dedup-key tests call the provider on a `RawRequest`.
"""
from __future__ import annotations

import pytest

from tests.providers.rocketchat_support import ALL_SAMPLES, body_of, changed, key, post


def test_a_retried_delivery_is_stored_once_and_counted(rocket):
    for _ in range(3):
        assert post(rocket, "Message.json").status_code == 200
    (event,) = rocket.process_all()
    assert event.duplicate_count == 2
    assert event.status == "processed"


def test_a_retried_delivery_gets_the_first_deliverys_reply(rocket):
    first, again = post(rocket, "LivechatSession.json"), post(rocket, "LivechatSession.json")
    assert first.status_code == again.status_code == 200
    assert first.data == again.data


@pytest.mark.parametrize("name", [n for n in ALL_SAMPLES if not n.startswith("LivechatOfflineMessage")])
def test_the_echoed_crm_data_does_not_change_the_dedup_key(name):
    assert key(changed(name, crmData="anything we replied before")) == key(changed(name, crmData={"a": 1})) \
        == key({k: v for k, v in body_of(name).items() if k != "crmData"})


def test_a_new_message_in_the_room_is_a_new_event():
    other = body_of("Message.json")
    other["messages"][0]["_id"] = "n3wMsg1d2e3f4g5h6"
    assert key(other) != key(body_of("Message.json"))


def test_an_edited_message_is_a_new_event():
    assert key(body_of("Message.edited.json")) != key(body_of("Message.json"))


def test_each_type_is_its_own_event_even_with_the_same_room_and_messages():
    assert len({key(body_of(name)) for name in ("LivechatSessionStart.json", "LivechatSessionQueued.json")}) == 2


def test_queued_again_for_another_department_is_a_new_event():
    again = changed("LivechatSessionQueued.json", departmentId="Sa1esDeptX9k2Lm4N")
    assert key(again) != key(body_of("LivechatSessionQueued.json"))


def test_a_close_is_identified_by_its_closing_time():
    later_view = changed("LivechatSession.json", lastMessageAt="2023-02-02T10:30:00.000Z", tags=["self", "vip"])
    assert key(later_view) == key(body_of("LivechatSession.json"))
    assert key(changed("LivechatSession.json", closedAt="2023-02-03T08:00:00.000Z")) != key(later_view)


def test_taken_by_another_agent_is_a_new_event():
    other = changed("LivechatSessionTaken.json", servedBy={"_id": "Bq3kLmN8pQr5sTuVw", "username": "user2",
                                                          "ts": "2023-02-02T10:16:07.375Z"})
    assert key(other) != key(body_of("LivechatSessionTaken.json"))


def test_the_same_agent_taking_the_room_again_later_is_a_new_event():
    again = changed("LivechatSessionTaken.json", servedBy={"_id": "aXjjcPwq4Pcp7xftH", "username": "user1",
                                                          "ts": "2023-02-02T10:40:00.000Z"})
    assert key(again) != key(body_of("LivechatSessionTaken.json"))


def test_a_forward_to_a_department_differs_from_a_forward_to_an_agent():
    assert key(body_of("LivechatSessionForwarded.department.json")) != key(body_of("LivechatSessionForwarded.json"))


def test_room_info_saved_unchanged_is_the_same_edit_and_a_real_edit_is_new():
    assert key(changed("LivechatEdit.json", lastMessageAt="2023-02-02T10:23:11.437Z")) == key(
        body_of("LivechatEdit.json"))
    assert key(body_of("LivechatEdit.second_edit.json")) != key(body_of("LivechatEdit.json"))


def test_a_repeated_lead_capture_of_the_same_contacts_is_one_event():
    repeated = changed("LeadCapture.json", lastMessageAt="2024-03-13T08:09:30.000Z")
    assert key(repeated) == key(body_of("LeadCapture.json"))


def test_a_lead_capture_with_a_new_phone_is_a_new_event():
    assert key(body_of("LeadCapture.new_phone.json")) != key(body_of("LeadCapture.json"))


def test_an_offline_message_is_identified_by_visitor_text_and_sending_time():
    first = body_of("LivechatOfflineMessage.json")
    sent_again_later = changed("LivechatOfflineMessage.json", sentAt="2016-06-01T20:10:00.000Z")
    other_text = changed("LivechatOfflineMessage.json", message="another question")
    assert len({key(first), key(sent_again_later), key(other_text)}) == 3


@pytest.mark.parametrize("body", [b"", b"\xff\xfe", b"[1, 2]", b'"text"', b'{"type": "Message"}',
                                  b'{"type": ["Message"], "_id": "Tc5SyBZHovD4k8BXv"}'])
def test_a_body_we_cannot_read_still_gets_a_key(body):
    assert key(body).startswith("sha256:")
