from tests.support.waiting import wait_until
from tests.support.workers import running_worker
from ingest.schema import Event


def test_a_generic_event_is_processed_by_a_real_worker(runtime, client, generic_headers):
    response = client.post("/hooks/generic-main", data=b'{"email": "a@example.com"}', headers=generic_headers)
    assert response.status_code == 200
    with running_worker(runtime):
        wait_until(lambda: _status(runtime, 1) == "processed", what="processing")


def _status(runtime, event_id):
    with runtime.sessions() as session:
        return session.get(Event, event_id).status
