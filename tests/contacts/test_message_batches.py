"""A task message carries several events: the worker processes them in one transaction, and yet one event's failure
stays its own. On SQLite and PostgreSQL, through the real event store and `process_events`."""
from __future__ import annotations

from crm_sync.pipeline import process_events
from tests.contacts.conftest import chat, report, visitor
from tests.contacts.scripted import BROKEN
from tests.support.recording import commits_while, statements_while

EMAIL = "ivan.petrov@example.ru"


def commits_during(store, action) -> int:
    return commits_while(store.runtime.engine, action)


def owner_lookups_while(store, action) -> int:
    """SELECTs reading identity owners (locks and the crm link look-ups aside)."""
    return sum(1 for statement in statements_while(store.runtime.engine, action)
               if statement.lstrip().upper().startswith("SELECT") and "FROM contact_identities" in statement
               and "FOR UPDATE" not in statement.upper())


def new_people(store, count: int, first: int = 0) -> list[int]:
    return [store.deliver(report(visitor(email=f"p{n}@example.com"), chat(f"jivo:{n}")))
            for n in range(first, first + count)]


def test_a_message_of_six_events_commits_as_often_as_a_message_of_one(store):
    alone = new_people(store, 1)
    together = new_people(store, 6, first=1)

    assert commits_during(store, lambda: store.process(*together)) == commits_during(store, lambda: store.process(*alone))
    assert len(store.contacts()) == 7


def test_a_message_of_six_new_people_reads_identity_owners_once(store):
    together = new_people(store, 6)

    assert owner_lookups_while(store, lambda: store.process(*together)) == 1
    assert len(store.contacts()) == 6


def test_a_failing_event_does_not_fail_the_others_of_its_message(make_store):
    store = make_store(sources={"broken": {"provider": BROKEN}})
    first = store.deliver(report(visitor(email="anna@example.com"), chat("jivo:1")))
    broken = store.deliver(report(visitor(email="boris@example.com"), chat("jivo:2")), source="broken",
                           provider=BROKEN)
    last = store.deliver(report(visitor(email="clara@example.com"), chat("jivo:3")))

    outcomes = process_events(store.runtime.sessions, [first, broken, last], options=store.options)

    assert outcomes == ["processed", "dead", "processed"]
    assert store.event(broken).error_class == "processing_error"
    assert "ZeroDivisionError" in store.event(broken).error_message
    assert sorted(contact.primary_email for contact in store.contacts()) == ["anna@example.com", "clara@example.com"]


def test_events_of_one_message_about_one_person_end_on_one_contact(store):
    by_email = store.deliver(report(visitor("Ivan", email=EMAIL), chat("jivo:1")))
    by_phone = store.deliver(report(visitor(phone="+7 916 123-45-67"), chat("jivo:2")))
    linking = store.deliver(report(visitor(email=EMAIL, phone="8 916 1234567"), chat("jivo:3")))

    store.process(by_email, by_phone, linking)

    contact = store.only_contact()
    assert contact.person_identities == {("email", EMAIL), ("phone", "+79161234567")}
    assert len(contact.interactions) == 3


def test_later_events_of_a_message_find_the_contact_that_earlier_ones_created_and_merged(store):
    events = [store.deliver(report(visitor(email=EMAIL), chat("jivo:1"))),
              store.deliver(report(visitor(phone="+7 916 123-45-67"), chat("jivo:2"))),
              store.deliver(report(visitor(email=EMAIL, phone="8 916 1234567"), chat("jivo:3"))),   # merges the two
              store.deliver(report(visitor(email="ivan.work@example.ru", phone="+79161234567"), chat("jivo:4"))),
              store.deliver(report(visitor(email="ivan.work@example.ru"), chat("jivo:5")))]

    store.process(*events)

    contact = store.only_contact()
    assert contact.person_identities == {("email", EMAIL), ("email", "ivan.work@example.ru"),
                                         ("phone", "+79161234567")}
    assert len(contact.interactions) == 5


def test_an_event_finished_already_is_skipped_and_the_rest_of_its_message_processed(store):
    finished = store.receive(report(visitor(email="anna@example.com"), chat("jivo:1")))
    waiting = store.deliver(report(visitor(email="boris@example.com"), chat("jivo:2")))

    outcomes = process_events(store.runtime.sessions, [finished, waiting], options=store.options)

    assert outcomes == ["skipped", "processed"]
    assert store.event(finished).attempts == 1
    assert len(store.contacts()) == 2


def test_every_event_of_a_message_gets_its_own_attempt(store):
    event_ids = new_people(store, 3)
    store.process(*event_ids)
    assert [(store.event(i).status, store.event(i).attempts) for i in event_ids] == [("processed", 1)] * 3
