"""One person, one contact under real concurrency, on PostgreSQL (READ COMMITTED) and on the embedded SQLite.

Events are stored first, then processed by parallel workers that start together: threads each running
`process_events` on their own database connection, and, end to end, `crm-ingest worker` processes fed through Redis
and through RabbitMQ.
"""
from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from crm_sync.pipeline import process_events
from crm_sync.schema import Contact, ContactIdentity
from crm_sync.store import StoreOptions
from ingest.db import migrate
from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import truncate_postgres, make_client
from tests.contacts.conftest import SCRIPTED_SOURCES, StoreHarness, chat, report, visitor
from tests.contacts.provider_requests import (
    PROVIDER_SOURCES, jivo_chat, livechat_chat, rocket_session, roistat_lead,
)
from tests.support.waiting import wait_until
from tests.support.workers import start_worker_process, write_config

WORKERS = 8
EMAIL, PHONE = "ivan.petrov@example.ru", "+79161234567"


def process_concurrently(store: StoreHarness, event_ids: list[int], workers: int = WORKERS,
                         per_message: int = 1) -> dict[int, str]:
    """`workers` threads, released together, each processing events from a shared list until it is empty, taking
    `per_message` at a time as a task message carries them."""
    pending = list(reversed(event_ids))
    outcomes: dict[int, str] = {}
    start = threading.Barrier(workers)

    def work() -> None:
        start.wait()
        while True:
            message = [pending.pop() for _ in range(per_message) if pending]
            if not message:
                return
            outcomes.update(zip(message, process_events(store.runtime.sessions, message, options=store.options)))

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result()
    return outcomes


def one_person_through_four_providers(count: int) -> list:
    """`count` webhooks about Ivan; most carry one or two of his identities, so they start many contacts at once."""
    deliveries = []
    for n in range(count):
        match n % 5:
            case 0:
                deliveries.append(jivo_chat(1000 + n, name="Ivan", email=EMAIL))
            case 1:
                deliveries.append(jivo_chat(1000 + n, phone="+7 916 123-45-67", number="2198"))
            case 2:
                deliveries.append(livechat_chat(f"LC{n}", customer_id="cust-1",
                                                phone="8 916 1234567" if n % 10 == 7 else ""))
            case 3:
                deliveries.append(rocket_session(f"room{n}", token="tok-1", visitor_id="v-1",
                                                 email=EMAIL if n % 10 == 3 else ""))
            case 4:
                deliveries.append(roistat_lead(str(n), visit="12853", phone="8 (916) 123-45-67",
                                               email=EMAIL if n % 10 == 9 else ""))
    return deliveries


IVAN_EVERYWHERE = {("email", EMAIL), ("phone", PHONE), ("jivo.client_id", "2198"), ("jivo.visitor_number", "2198"),
                   ("livechat.customer_id", "cust-1"), ("rocketchat.visitor_token", "tok-1"),
                   ("rocketchat.visitor_id", "v-1"), ("roistat.visit", "12853")}


def identities_besides_orders(contact) -> set[tuple[str, str]]:
    """The person's identities but the order ids each Roistat lead also claims (its own event's id)."""
    return {identity for identity in contact.person_identities if identity[0] != "roistat.order"}


@pytest.mark.postgres
@pytest.mark.parametrize("per_message", [1, 5], ids=["one-per-message", "five-per-message"])
def test_fifty_concurrent_events_about_one_person_from_four_providers_end_in_one_contact(pg_store, per_message):
    client = make_client(pg_store.runtime)
    for delivery in one_person_through_four_providers(50):
        delivery.send(client)
    with pg_store.session() as session:
        event_ids = list(session.scalars(select(Event.id).order_by(Event.id)))
    assert len(event_ids) == 50

    outcomes = process_concurrently(pg_store, event_ids, per_message=per_message)

    assert set(outcomes.values()) == {"processed"}
    contact = pg_store.only_contact()
    assert identities_besides_orders(contact) == IVAN_EVERYWHERE
    assert len(contact.interactions) == 50
    _assert_merges_point_at_live_contacts(pg_store)


@pytest.mark.postgres
def test_fifty_concurrent_first_events_with_one_email_create_exactly_one_contact_row(pg_store):
    event_ids = [pg_store.deliver(report(visitor(email=EMAIL), chat(f"jivo:{n}"))) for n in range(50)]
    process_concurrently(pg_store, event_ids)
    with pg_store.session() as session:
        assert session.scalar(select(func.count(Contact.id))) == 1  # no duplicate ever existed, none was merged
    assert len(pg_store.only_contact().interactions) == 50


@pytest.mark.postgres
def test_an_email_event_racing_an_email_and_phone_event_never_needs_a_merge(pg_store):
    event_ids = []
    for n in range(20):
        email = f"person{n}@example.ru"
        event_ids += [pg_store.deliver(report(visitor(email=email))),
                      pg_store.deliver(report(visitor(email=email, phone=f"+7916100{n:04d}")))]
    process_concurrently(pg_store, event_ids)
    with pg_store.session() as session:
        assert session.scalar(select(func.count(Contact.id))) == 20
    assert all(len(contact.person_identities) == 2 for contact in pg_store.contacts())


@pytest.mark.postgres
def test_concurrent_events_each_linking_two_existing_contacts_merge_them_all_into_the_lowest(pg_store):
    emails = [f"person{n}@example.ru" for n in range(12)]
    for email in emails:
        pg_store.receive(report(visitor(email=email)))
    links = [pg_store.deliver(report(visitor(email=[a, b]))) for a, b in zip(emails, emails[1:])]
    links += [pg_store.deliver(report(visitor(email=[b, a]))) for a, b in zip(emails[::2], emails[1::2])]

    outcomes = process_concurrently(pg_store, links)

    assert set(outcomes.values()) == {"processed"}
    contact = pg_store.only_contact()
    assert contact.id == 1
    assert contact.person_identities == {("email", email) for email in emails}
    with pg_store.session() as session:
        merged = dict(session.execute(select(Contact.id, Contact.merged_into).where(Contact.id != 1)).all())
    assert merged == {n: 1 for n in range(2, 13)}


@pytest.mark.postgres
def test_the_same_event_processed_by_two_workers_at_once_is_recorded_once(pg_store):
    event_ids = [pg_store.deliver(report(visitor(email=EMAIL), chat(f"jivo:{n}"))) for n in range(10)]
    outcomes = process_concurrently(pg_store, event_ids + event_ids, workers=4)
    assert set(outcomes.values()) <= {"processed", "skipped"}
    assert len(pg_store.only_contact().interactions) == 10


@pytest.mark.postgres
def test_fifty_webhooks_about_one_person_through_real_worker_processes_end_in_one_contact(
        postgres_schema_url, broker_server, make_settings, tmp_path):
    truncate_postgres(postgres_schema_url)
    runtime = Runtime(make_settings(postgres_schema_url, broker_server.url, sources=PROVIDER_SOURCES))
    store = StoreHarness(runtime, StoreOptions.from_settings(runtime.settings))
    worker = start_worker_process(write_config(runtime, tmp_path / "crm-ingest.toml"), concurrency=4,
                                  log_path=tmp_path / "worker.log")
    try:
        client = make_client(runtime)
        for delivery in one_person_through_four_providers(50):
            delivery.send(client)
        wait_until(lambda: _count_processed(store) == 50, timeout=90, what="50 events processed by the workers")
        contact = store.only_contact()
        assert identities_besides_orders(contact) == IVAN_EVERYWHERE
        assert len(contact.interactions) == 50
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        runtime.close()


def _count_processed(store: StoreHarness) -> int:
    with store.session() as session:
        return session.scalar(select(func.count(Event.id)).where(Event.status == "processed"))


def _assert_merges_point_at_live_contacts(store: StoreHarness) -> None:
    with store.session() as session:
        targets = set(session.scalars(select(Contact.merged_into).where(Contact.merged_into.is_not(None))))
        owners = set(session.scalars(select(ContactIdentity.contact_id)))
        live = set(session.scalars(select(Contact.id).where(Contact.merged_into.is_(None))))
    assert targets <= live and owners <= live


def test_concurrent_workers_on_the_embedded_sqlite_default_also_end_in_one_contact(tmp_path, make_settings):
    url = f"sqlite:///{tmp_path}/embedded.db"
    migrate(url)
    runtime = Runtime(make_settings(url, sources=SCRIPTED_SOURCES))
    store = StoreHarness(runtime, StoreOptions.from_settings(runtime.settings))
    try:
        ivan = [visitor(email=EMAIL), visitor(phone="8 916 123-45-67", ids={"jivo.client_id": "1217"}),
                visitor(ids={"jivo.client_id": "1217"}), visitor(email=EMAIL, phone=PHONE)]
        event_ids = [store.deliver(report(ivan[n % 4], chat(f"jivo:{n}"))) for n in range(30)]
        assert set(process_concurrently(store, event_ids, workers=4).values()) == {"processed"}
        assert store.only_contact().person_identities == {("email", EMAIL), ("phone", PHONE),
                                                          ("jivo.client_id", "1217")}
    finally:
        runtime.close()
