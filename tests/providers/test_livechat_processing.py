"""LiveChat the whole way: HTTP, the event store and processing into conversations and contacts.

Every test here runs on SQLite and PostgreSQL (the `database_url` parametrisation).
"""
from __future__ import annotations

from crm_sync.contacts import list_interactions, lookup_card
from crm_sync.model import CanonicalRecord, Person
from tests.conftest import payload
from tests.providers.livechat_support import basic, post, record, signed


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
