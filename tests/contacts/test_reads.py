"""The read API on a synchronous reply path: a fixed, small number of queries however much a contact has."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone

from sqlalchemy import event

from crm_sync.contacts import MAX_PREBUILT_KEYS, get_cards, lookup_card
from tests.contacts.conftest import chat, lead, report, visitor


@contextmanager
def counted_queries(engine):
    """The SELECTs sent to the database (SQLite's explicit BEGIN is not a query)."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_card_lookup_is_four_queries_however_many_identities_and_interactions(store):
    for n in range(30):
        store.receive(report(visitor("Ivan", email="ivan@example.ru", phone=f"+7916100{n:04d}",
                                     ids={"jivo.client_id": str(n)}), chat(f"jivo:{n}")))
    with store.session() as session, counted_queries(store.runtime.engine) as statements:
        card = lookup_card(session, visitor(email="ivan@example.ru", phone="+79161000001",
                                            ids={"jivo.client_id": "5"}), "RU")
    assert len(card.phones) == 30 and len(card.interactions) == 20
    assert len(statements) <= 4


def test_cards_for_many_contacts_take_the_same_few_queries_as_for_one(store):
    for n in range(12):
        store.receive(report(visitor(email=f"p{n}@example.ru"), lead(str(n))))
    with store.session() as session, counted_queries(store.runtime.engine) as statements:
        cards = get_cards(session, list(range(1, 13)))
    assert [card.interactions[0].external_id for card in cards.values()] == [str(n) for n in range(12)]
    assert len(statements) <= 4


def test_a_card_lists_the_newest_interactions_first(store):
    for external_id, year in (("old", 2025), ("new", 2026)):
        occurred_at = datetime(year, 1, 1, tzinfo=timezone.utc)
        store.receive(report(visitor(email="ivan@example.ru"), lead(external_id, occurred_at=occurred_at)))
    card = store.card(visitor(email="ivan@example.ru"))
    assert [i.external_id for i in card.interactions] == ["new", "old"]


def test_an_unknown_person_has_no_card(store):
    store.receive(report(visitor(email="ivan@example.ru"), lead("1")))
    assert store.card(visitor(email="maria@example.ru", phone="call me")) is None


def test_a_card_is_found_by_any_of_more_keys_than_a_prebuilt_look_up_holds(store):
    store.receive(report(visitor(email="ivan@example.ru"), lead("1")))
    many = [f"other{n}@example.ru" for n in range(MAX_PREBUILT_KEYS)] + ["ivan@example.ru"]
    with store.session() as session:
        card = lookup_card(session, visitor(email=many), "RU", source="scripted")
    assert card is not None and card.emails == ["ivan@example.ru"]



def test_a_cards_moments_are_utc_on_either_database(store):
    occurred_at = datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)
    store.receive(report(visitor(email="ivan@example.ru"), lead("1", occurred_at=occurred_at)))
    with store.session() as session:
        card = lookup_card(session, visitor(email="ivan@example.ru"), "RU", source="scripted")
    moment = card.interactions[0].occurred_at
    assert moment == occurred_at and moment.tzinfo is timezone.utc
