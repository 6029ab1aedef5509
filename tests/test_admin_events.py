"""Admin API for stored events: closed without a token, list/show/replay, bulk replay with a dry run first."""
from __future__ import annotations

from crm_sync.pipeline import process_event
from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import make_client


def post(client, generic_headers, body: bytes):
    assert client.post("/hooks/generic-main", data=body, headers=generic_headers).status_code == 200


def status_of(runtime, event_id):
    with runtime.sessions() as session:
        return session.get(Event, event_id).status


def test_admin_api_is_closed_when_no_token_is_configured(database_url, make_settings):
    runtime = Runtime(make_settings(database_url, admin_token=None))
    response = make_client(runtime).get("/api/events", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    assert response.json["error"] == "admin_disabled"
    runtime.close()


def test_admin_api_rejects_a_wrong_token(client):
    response = client.get("/api/events", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"


def test_events_are_listed_newest_first_and_filtered(client, runtime, admin_headers, generic_headers):
    post(client, generic_headers, b'{"n": 1}')
    post(client, generic_headers, b"not json")
    process_event(runtime.sessions, 1)
    process_event(runtime.sessions, 2)
    listed = client.get("/api/events", headers=admin_headers).json["events"]
    assert [e["id"] for e in listed] == [2, 1]
    dead = client.get("/api/events?status=dead", headers=admin_headers).json["events"]
    assert [(e["id"], e["error_class"]) for e in dead] == [(2, "parse_error")]
    assert client.get("/api/events?source=elsewhere", headers=admin_headers).json["events"] == []
    assert len(client.get("/api/events?limit=1", headers=admin_headers).json["events"]) == 1


def test_a_bad_filter_is_400_with_the_reason(client, admin_headers):
    response = client.get("/api/events?status=lost", headers=admin_headers)
    assert response.status_code == 400
    assert "status must be one of" in response.json["message"]
    assert client.get("/api/events?since=yesterday-ish", headers=admin_headers).status_code == 400


def test_one_event_shows_its_raw_request_status_and_what_it_produced(client, runtime, admin_headers,
                                                                      generic_headers):
    post(client, generic_headers, b'{"email": "a@example.com", "name": "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd"}')
    process_event(runtime.sessions, 1)
    shown = client.get("/api/events/1", headers=admin_headers).json
    assert shown["status"] == "processed"
    assert shown["request"]["body"] == '{"email": "a@example.com", "name": "Иван"}'
    assert shown["result"]["records"][0]["person"]["emails"] == ["a@example.com"]
    assert client.get("/api/events/999", headers=admin_headers).status_code == 404


def test_a_binary_body_is_shown_as_base64(client, admin_headers, generic_headers):
    post(client, generic_headers, b"\xff\xfe\x00")
    shown = client.get("/api/events/1", headers=admin_headers).json
    assert (shown["request"]["body"], shown["request"]["body_base64"]) == (None, "//4A")


def test_replaying_a_dead_event_runs_the_current_code_again(client, runtime, admin_headers, generic_headers):
    post(client, generic_headers, b"not json")
    process_event(runtime.sessions, 1)
    assert status_of(runtime, 1) == "dead"
    response = client.post("/api/events/1/replay", headers=admin_headers)
    assert response.status_code == 202
    assert status_of(runtime, 1) == "received"
    assert process_event(runtime.sessions, 1) == "dead"  # the code has not been fixed, so it fails the same way


def test_an_event_in_flight_is_not_replayed(client, runtime, admin_headers, generic_headers):
    post(client, generic_headers, b"{}")
    response = client.post("/api/events/1/replay", headers=admin_headers)
    assert response.status_code == 409
    assert response.json["error"] == "in_flight"


def test_bulk_replay_counts_first_and_replays_only_when_asked(client, runtime, admin_headers, generic_headers):
    for body in (b"bad 1", b"bad 2", b'{"email": "ok@example.com"}'):
        post(client, generic_headers, body)
    for event_id in (1, 2, 3):
        process_event(runtime.sessions, event_id)
    dry = client.post("/api/replay", json={"status": "dead"}, headers=admin_headers).json
    assert dry == {"dry_run": True, "matching": 2, "purged": 0, "not_finished": 0, "replayable": 2, "replayed": 0}
    assert status_of(runtime, 1) == "dead"
    done = client.post("/api/replay", json={"status": "dead", "dry_run": False}, headers=admin_headers).json
    assert done == {"dry_run": False, "matching": 2, "purged": 0, "not_finished": 0, "replayable": 2, "replayed": 2}
    assert [status_of(runtime, i) for i in (1, 2, 3)] == ["received", "received", "processed"]


def test_bulk_replay_needs_a_filter(client, admin_headers):
    response = client.post("/api/replay", json={"dry_run": False}, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert response.json["message"] == "name at least one of status, source, provider, since"


def test_bulk_replay_by_provider_alone_counts_that_providers_events(client, runtime, admin_headers, generic_headers):
    post(client, generic_headers, b"bad")
    process_event(runtime.sessions, 1)
    mine = client.post("/api/replay", json={"provider": "generic"}, headers=admin_headers).json
    others = client.post("/api/replay", json={"provider": "jivo"}, headers=admin_headers).json
    assert (mine["replayable"], others["matching"]) == (1, 0)


def test_a_dry_run_counts_only_what_a_real_run_replays(client, runtime, admin_headers, generic_headers):
    for body in (b"bad", b'{"ok": 1}', b'{"ok": 2}'):
        post(client, generic_headers, body)
    process_event(runtime.sessions, 1)  # 2 and 3 stay received: not finished, so not replayable
    dry = client.post("/api/replay", json={"source": "generic-main"}, headers=admin_headers).json
    done = client.post("/api/replay", json={"source": "generic-main", "dry_run": False}, headers=admin_headers).json
    assert (dry["matching"], dry["not_finished"], dry["replayable"]) == (3, 2, 1)
    assert done["replayed"] == dry["replayable"]


def test_a_dry_run_over_a_status_that_cannot_be_replayed_counts_none(client, admin_headers, generic_headers):
    post(client, generic_headers, b'{"n": 1}')
    dry = client.post("/api/replay", json={"status": "received"}, headers=admin_headers).json
    assert (dry["matching"], dry["not_finished"], dry["replayable"]) == (1, 1, 0)


def test_replaying_an_absent_event_is_404(client, admin_headers):
    response = client.post("/api/events/424242/replay", headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (404, "not_found")


def test_events_are_paged_newest_first_with_next_before(client, runtime, admin_headers, generic_headers):
    for n in range(5):
        post(client, generic_headers, f'{{"n": {n}}}'.encode())
    pages, before = [], None
    while True:
        query = {"limit": 2, **({"before": before} if before else {})}
        page = client.get("/api/events", query_string=query, headers=admin_headers).json
        pages.append([event["id"] for event in page["events"]])
        before = page["next_before"]
        if before is None:
            break
    assert pages == [[5, 4], [3, 2], [1]]


def test_a_page_that_holds_the_last_match_says_there_is_no_next(client, admin_headers, generic_headers):
    for n in range(2):
        post(client, generic_headers, f'{{"n": {n}}}'.encode())
    page = client.get("/api/events?limit=2", headers=admin_headers).json
    assert ([event["id"] for event in page["events"]], page["next_before"]) == ([2, 1], None)


def test_before_combines_with_the_filters(client, runtime, admin_headers, generic_headers):
    for body in (b"bad 1", b'{"ok": 1}', b"bad 2", b"bad 3"):
        post(client, generic_headers, body)
    for event_id in range(1, 5):
        process_event(runtime.sessions, event_id)
    page = client.get("/api/events?status=dead&before=4&limit=1", headers=admin_headers).json
    assert ([event["id"] for event in page["events"]], page["next_before"]) == ([3], 3)
