"""/metrics reads what is waiting from the database and the broker at scrape time."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from crm_sync.pipeline import process_event
from crm_sync.schema import Contact, Delivery, DeliveryStatus, DestinationState, StoredInteraction
from ingest.db import migrate, transaction
from ingest.runtime import Runtime
from ingest.shared_reads import FRESH_SECONDS
from ingest.schema import Event, utcnow
from tests.conftest import DEAD_BROKER_URLS, PG_SERVER_URL, make_client, truncate_postgres
from tests.ops.conftest import Samples, post_generic, sample, scrape
from tests.support.stalling_proxy import QUEUE_DECLARE_INGEST, HoldingProxy, StallingProxy

WEBHOOK_DESTINATION = {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "A" * 32,
                       "circuit_failures": 3}


def test_events_are_counted_by_source_and_status(ops_client, ops_runtime):
    for body in (b"{}", b"not json", b'{"email": "a@example.com"}'):
        post_generic(ops_client, body)
    post_generic(ops_client, b"{}", source="generic-b")
    process_event(ops_runtime.sessions, 2)  # dead: not JSON
    with transaction(ops_runtime.sessions) as session:
        session.execute(update(Event).where(Event.id == 3).values(status="processing"))

    samples = scrape(ops_client)

    assert sample(samples, "crm_ingest_events", source="generic-main", status="received") == 1
    assert sample(samples, "crm_ingest_events", source="generic-main", status="processing") == 1
    assert sample(samples, "crm_ingest_events", source="generic-main", status="dead") == 1
    assert sample(samples, "crm_ingest_events", source="generic-b", status="received") == 1
    assert sample(samples, "crm_ingest_events", source="jivo-main", status="dead") == 0


def test_outbox_lag_is_the_age_of_the_oldest_event_the_broker_may_not_have(ops_client, ops_runtime):
    for body in (b'{"n": 1}', b'{"n": 2}', b'{"n": 3}'):
        post_generic(ops_client, body)
    requeue_after = timedelta(seconds=ops_runtime.settings.requeue_after_seconds)
    now = utcnow()
    with transaction(ops_runtime.sessions) as session:  # 1: publish failed; 2: enqueued, message lost long ago
        session.execute(update(Event).where(Event.id == 1).values(enqueued_at=None,
                                                                   received_at=now - timedelta(minutes=5)))
        session.execute(update(Event).where(Event.id == 2).values(enqueued_at=now - 2 * requeue_after,
                                                                   received_at=now - timedelta(minutes=10)))

    samples = scrape(ops_client)

    assert sample(samples, "crm_ingest_outbox_waiting_events") == 2
    assert sample(samples, "crm_ingest_outbox_lag_seconds") >= 600
    assert sample(samples, "crm_ingest_oldest_unfinished_event_seconds") >= 600


def test_outbox_lag_is_zero_when_every_event_is_in_the_broker(ops_client):
    post_generic(ops_client, b'{"n": 1}')

    samples = scrape(ops_client)

    assert sample(samples, "crm_ingest_outbox_waiting_events") == 0
    assert sample(samples, "crm_ingest_outbox_lag_seconds") == 0


def test_queue_depth_counts_the_messages_of_the_embedded_broker(ops_client):
    for n in range(2):
        post_generic(ops_client, f'{{"n": {n}}}'.encode())

    samples = scrape(ops_client)

    assert sample(samples, "crm_ingest_queue_depth", queue="ingest") == 2
    assert sample(samples, "crm_ingest_queue_depth", queue="deliver") == 0
    assert sample(samples, "crm_ingest_state_up", part="broker") == 1
    assert sample(samples, "crm_ingest_state_up", part="database") == 1


def test_queue_depth_reads_redis_under_the_key_prefix(production_runtime):
    client = make_client(production_runtime)
    for n in range(3):
        post_generic(client, f'{{"n": {n}}}'.encode())

    samples = scrape(client)

    assert production_runtime.settings.broker_key_prefix  # the test's own keys, not another run's
    assert sample(samples, "crm_ingest_queue_depth", queue="ingest") == 3
    assert sample(samples, "crm_ingest_queue_depth", queue="maintenance") == 0
    assert sample(samples, "crm_ingest_queue_unacked") == 0


def test_queue_depth_reads_rabbitmq_by_passive_declare(tmp_path, make_settings, rabbitmq_broker_url):
    url = f"sqlite:///{tmp_path}/crm-ingest.db"
    migrate(url)
    runtime = Runtime(make_settings(url, rabbitmq_broker_url))
    client = make_client(runtime)
    for n in range(3):
        post_generic(client, f'{{"n": {n}}}'.encode())
    try:
        samples = scrape(client)
    finally:
        runtime.close()

    assert sample(samples, "crm_ingest_queue_depth", queue="ingest") == 3
    assert sample(samples, "crm_ingest_queue_depth", queue="deliver") == 0, "never declared: nothing waits in it"
    assert sample(samples, "crm_ingest_state_up", part="broker") == 1
    assert sample(samples, "crm_ingest_queue_unacked") is None, "a passive declare counts only ready messages"


@pytest.mark.parametrize("dead_broker", DEAD_BROKER_URLS.values(), ids=DEAD_BROKER_URLS.keys())
def test_an_unreachable_broker_is_reported_and_the_page_still_served(database_url, make_settings, dead_broker):
    runtime = Runtime(make_settings(database_url, broker_url=dead_broker, publish_timeout_seconds=0.2))
    try:
        samples = scrape(make_client(runtime))
    finally:
        runtime.close()

    assert sample(samples, "crm_ingest_state_up", part="broker") == 0
    assert sample(samples, "crm_ingest_state_up", part="database") == 1
    assert sample(samples, "crm_ingest_events", source="generic-main", status="received") == 0


def scrape_unless_it_hangs(client) -> Samples | None:
    """The page, or None if it still waits after a minute (a bound on a hang, not a speed)."""
    pages: list[Samples] = []
    scraping = threading.Thread(target=lambda: pages.append(scrape(client)), daemon=True)
    scraping.start()
    scraping.join(timeout=60)
    return pages[0] if pages else None


def test_a_rabbitmq_that_stopped_answering_is_reported_and_the_page_still_served(tmp_path, make_settings,
                                                                                 rabbitmq_broker_url):
    url = f"sqlite:///{tmp_path}/crm-ingest.db"
    migrate(url)
    server = urlsplit(rabbitmq_broker_url)
    with HoldingProxy(server.hostname, server.port, QUEUE_DECLARE_INGEST) as proxy:
        runtime = Runtime(make_settings(url, proxy.url_for(rabbitmq_broker_url), publish_timeout_seconds=0.5))
        samples = scrape_unless_it_hangs(make_client(runtime))
        runtime.close()

    assert proxy.held.is_set(), "the broker went silent at the queue depth read"
    assert samples is not None, "the scrape still waits for a broker that stopped answering"
    assert sample(samples, "crm_ingest_state_up", part="broker") == 0
    assert sample(samples, "crm_ingest_state_up", part="database") == 1


def test_a_postgresql_that_stopped_answering_is_reported_and_the_page_still_served(postgres_schema_url,
                                                                                   make_settings):
    truncate_postgres(postgres_schema_url)
    server = urlsplit(PG_SERVER_URL)
    with StallingProxy(server.hostname, server.port) as proxy:
        runtime = Runtime(make_settings(proxy.url_for(postgres_schema_url)))
        client = make_client(runtime)
        assert sample(scrape(client), "crm_ingest_state_up", part="database") == 1  # warm: the pool keeps a connection
        time.sleep(FRESH_SECONDS)  # past the window in which scrapes share that read (ingest.shared_reads)
        proxy.stall()
        samples = scrape_unless_it_hangs(client)
        runtime.close()

    assert samples is not None, "the scrape still waits for a database that stopped answering"
    assert sample(samples, "crm_ingest_state_up", part="database") == 0
    assert sample(samples, "crm_ingest_state_up", part="broker") == 1


def test_deliveries_and_circuit_state_are_shown_per_destination(database_url, make_settings):
    runtime = Runtime(make_settings(database_url, destinations={"audit": WEBHOOK_DESTINATION}))
    now = utcnow()
    with transaction(runtime.sessions) as session:
        contact = Contact(created_at=now, updated_at=now)
        session.add(contact)
        session.flush()
        interactions = [StoredInteraction(contact_id=contact.id, provider="generic", source="generic-main",
                                          natural_key=f"note:{n}", kind="note", event_id=n) for n in range(4)]
        session.add_all(interactions)
        session.flush()
        for interaction, status, due in zip(interactions, ("pending", "failed", "dead", "succeeded"),
                                            (now - timedelta(minutes=3), now + timedelta(minutes=1), None, None)):
            session.add(Delivery(destination="audit", interaction_id=interaction.id, fingerprint="f", status=status,
                                 next_attempt_at=due))
        session.add(DestinationState(destination="audit", consecutive_failures=3,
                                     circuit_open_until=now + timedelta(minutes=2)))
    try:
        samples = scrape(make_client(runtime))
    finally:
        runtime.close()

    assert sample(samples, "crm_ingest_deliveries", destination="audit", status=DeliveryStatus.PENDING) == 1
    assert sample(samples, "crm_ingest_deliveries", destination="audit", status=DeliveryStatus.FAILED) == 1
    assert sample(samples, "crm_ingest_deliveries", destination="audit", status=DeliveryStatus.DEAD) == 1
    assert sample(samples, "crm_ingest_delivery_overdue_seconds", destination="audit") >= 180
    assert sample(samples, "crm_ingest_circuit_state", destination="audit", state="open") == 1
    assert sample(samples, "crm_ingest_circuit_state", destination="audit", state="closed") == 0
    assert 0 < sample(samples, "crm_ingest_destination_paused_seconds", destination="audit",
                      reason="circuit_open") <= 120


def test_a_destination_past_its_cooldown_is_half_open(database_url, make_settings):
    runtime = Runtime(make_settings(database_url, destinations={"audit": WEBHOOK_DESTINATION}))
    with transaction(runtime.sessions) as session:
        session.add(DestinationState(destination="audit", consecutive_failures=3,
                                     circuit_open_until=utcnow() - timedelta(seconds=1)))
    try:
        samples = scrape(make_client(runtime))
    finally:
        runtime.close()

    assert sample(samples, "crm_ingest_circuit_state", destination="audit", state="half_open") == 1
    assert sample(samples, "crm_ingest_destination_paused_seconds", destination="audit", reason="circuit_open") == 0
