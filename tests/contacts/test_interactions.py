"""Interactions: one per conversation (or lead), whatever the number and order of the events that report it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from crm_sync.contacts import list_interactions
from crm_sync.model import Agent, ConversationState, InteractionKind, Message
from tests.contacts.conftest import chat, lead, report, visitor

START = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
IVAN = visitor("Ivan", email="ivan@example.ru")


def _lifecycle() -> list:
    """Start, taken, a message, close: the four events Rocket.Chat or Jivo send about one conversation."""
    return [
        report(IVAN, chat("c1", ConversationState.OPEN, occurred_at=START, subject="Delivery"), "start"),
        report(IVAN, chat("c1", ConversationState.ASSIGNED, agent=Agent(id="7", name="Olga")), "taken"),
        report(IVAN, chat("c1", kind=InteractionKind.MESSAGE, messages=[
            Message(author="visitor", text="Hi", at=START + timedelta(seconds=5), external_id="m1")]), "message"),
        report(IVAN, chat("c1", ConversationState.CLOSED, tags=["delivery"], messages=[
            Message(author="visitor", text="Hi", at=START + timedelta(seconds=5), external_id="m1"),
            Message(author="agent", text="Hello!", at=START + timedelta(seconds=9), external_id="m2")]), "close"),
    ]


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1), (1, 3, 0, 2)])
def test_a_conversation_reported_by_several_events_in_any_order_is_one_closed_chat(store, order):
    event_ids = [store.deliver(record) for record in _lifecycle()]
    store.process(*(event_ids[i] for i in order))
    [interaction] = store.interactions()
    assert (interaction.kind, interaction.state, interaction.subject) == ("chat", "closed", "Delivery")
    assert interaction.occurred_at == START
    assert interaction.event_id == event_ids[0]
    assert [m["text"] for m in interaction.details["transcript"]] == ["Hi", "Hello!"]
    assert interaction.details["agent"]["name"] == "Olga"
    assert interaction.details["tags"] == ["delivery"]


def test_a_conversations_state_never_moves_back(store):
    store.receive(report(IVAN, chat("c1", ConversationState.CLOSED)))
    store.receive(report(IVAN, chat("c1", ConversationState.OPEN)))
    assert store.interactions()[0].state == "closed"


def test_messages_without_ids_merge_by_time_author_and_text(store):
    hello = Message(author="visitor", text="Hello", at=START)
    store.receive(report(IVAN, chat("c1", messages=[hello])))
    store.receive(report(IVAN, chat("c1", messages=[hello, Message(author="agent", text="Hi", at=START)])))
    assert [m["text"] for m in store.interactions()[0].details["transcript"]] == ["Hi", "Hello"]


def test_tags_reported_by_different_events_are_united(store):
    store.receive(report(IVAN, chat("c1", tags=["sales", "vip"])))
    store.receive(report(IVAN, chat("c1", tags=["sales", "delivery"])))
    assert store.interactions()[0].details["tags"] == ["delivery", "sales", "vip"]


def test_the_newest_report_of_a_field_wins_even_when_processed_first(store):
    older = store.deliver(report(IVAN, chat("c1", subject="Old topic", utm={"source": "google", "medium": "cpc"})))
    newer = store.deliver(report(IVAN, chat("c1", subject="New topic", utm={"source": "yandex"})))
    store.process(newer, older)
    interaction = store.interactions()[0]
    assert interaction.subject == "New topic"
    assert interaction.details["utm"] == {"source": "yandex", "medium": "cpc"}


def test_a_lead_delivered_twice_under_different_dedup_keys_is_one_interaction(store):
    first = store.receive(report(IVAN, lead("90", subject="Callback")))
    second = store.receive(report(IVAN, lead("90", subject="Callback")))
    [interaction] = store.interactions()
    assert interaction.event_id == first
    assert store.event(second).result["interaction_ids"] == [interaction.id]


def test_the_same_lead_id_from_two_provider_accounts_is_two_interactions(store):
    store.receive(report(IVAN, lead("90")), source="scripted")
    store.receive(report(IVAN, lead("90")), source="scripted-other")
    assert sorted(i.source for i in store.interactions()) == ["scripted", "scripted-other"]
    assert len(store.only_contact().interactions) == 2


def test_interactions_without_any_id_are_one_per_event(store):
    store.receive(report(IVAN, chat(None, kind=InteractionKind.NOTE, subject="called back")))
    store.receive(report(IVAN, chat(None, kind=InteractionKind.NOTE, subject="called back")))
    assert [i.kind for i in store.interactions()] == ["note", "note"]


def test_list_interactions_pages_by_id_with_a_stable_total(store):
    for number in range(5):
        store.receive(report(visitor(email=f"p{number}@example.ru"), lead(str(number))))
    store.receive(report(IVAN, chat("c1")))
    with store.session() as session:
        total, first_page = list_interactions(session, provider="roistat", kind="lead", limit=2)
        again, second_page = list_interactions(session, provider="roistat", kind="lead", offset=2, limit=2)
    assert (total, again) == (5, 5)
    assert [i.external_id for i in first_page + second_page] == ["0", "1", "2", "3"]
    assert first_page[0].source == "scripted" and first_page[0].contact_id is not None


def test_changed_since_lists_interactions_changed_by_new_reports_but_not_by_replays(store):
    first = store.receive(report(IVAN, lead("1")))
    store.receive(report(visitor(email="other@example.ru"), lead("2")))
    with store.session() as session:
        mark = max(i.updated_at for i in list_interactions(session, provider="roistat")[1])
    store.replay(first)
    store.receive(report(visitor(email="other@example.ru"), lead("2", subject="called back")))
    with store.session() as session:
        total, changed = list_interactions(session, provider="roistat", changed_since=mark + timedelta(microseconds=1))
    assert [i.external_id for i in changed] == ["2"]
