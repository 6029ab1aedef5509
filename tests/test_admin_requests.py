"""What the admin API makes of what it is given: every mistake in a filter, an id, a page or a body is a 4xx naming
it, never a 500; the forms operators really send (lowercase bearer, a '+' lost in a URL) are understood."""
from __future__ import annotations

import pytest

from crm_sync.pipeline import process_event

HUGE_ID = "9223372036854775808"  # one past BIGINT


def post(client, generic_headers, body: bytes) -> None:
    assert client.post("/hooks/generic-main", data=body, headers=generic_headers).status_code == 200


@pytest.mark.parametrize("route, body, field", [
    ("/api/replay", {"status": ["dead"]}, "status"),
    ("/api/replay", {"status": 5}, "status"),
    ("/api/replay", {"source": {"a": 1}}, "source"),
    ("/api/replay", {"since": 5}, "since"),
    ("/api/replay", {"status": "dead", "provider": ["x"]}, "provider"),
    ("/api/deliveries/retry", {"status": ["dead"]}, "status"),
    ("/api/deliveries/retry", {"status": "dead", "destination": ["x"]}, "destination"),
])
def test_a_filter_value_that_is_not_a_string_is_400_naming_the_field(client, admin_headers, route, body, field):
    response = client.post(route, json=body, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert response.json["message"].startswith(f"{field} must be a string")


def test_dry_run_that_is_not_a_boolean_is_400(client, admin_headers):
    response = client.post("/api/replay", json={"status": "dead", "dry_run": "false"}, headers=admin_headers)
    assert response.status_code == 400
    assert "dry_run must be true or false" in response.json["message"]


@pytest.mark.parametrize("since", ["999999d", "99999999999d", "0001-01-01T00:00:00+01:00"])
def test_a_since_too_far_back_is_400_when_listing(client, admin_headers, since):
    response = client.get("/api/events", query_string={"since": since}, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert "out of range" in response.json["message"]


def test_a_since_too_far_back_is_400_when_replaying(client, admin_headers):
    response = client.post("/api/replay", json={"since": "999999d"}, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")


@pytest.mark.parametrize("method, path", [
    ("GET", f"/api/events/{HUGE_ID}"), ("POST", f"/api/events/{HUGE_ID}/replay"),
    ("GET", f"/api/deliveries/{HUGE_ID}"), ("POST", f"/api/deliveries/{HUGE_ID}/retry"),
    ("GET", f"/api/contacts/{HUGE_ID}"), ("GET", "/api/events/99999999999999999999999"),
])
def test_an_id_beyond_64_bits_is_404(client, admin_headers, method, path):
    response = client.open(path, method=method, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (404, "not_found")


@pytest.mark.parametrize("route", ["/api/events", "/api/deliveries"])
@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001", "99999999999999999999999"])
def test_a_limit_outside_1_to_1000_is_400_saying_the_range(client, admin_headers, route, limit):
    response = client.get(route, query_string={"limit": limit}, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert "limit must be" in response.json["message"]
    if limit.lstrip("-").isdigit():
        assert "from 1 to 1000" in response.json["message"]


@pytest.mark.parametrize("before", ["0", "x", HUGE_ID])
def test_a_before_that_is_not_an_id_is_400(client, admin_headers, before):
    response = client.get("/api/events", query_string={"before": before}, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert "before must be" in response.json["message"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_the_bearer_scheme_is_accepted_in_any_case(client, scheme):
    from tests.conftest import ADMIN_TOKEN

    response = client.get("/api/events", headers={"Authorization": f"{scheme} {ADMIN_TOKEN}"})
    assert response.status_code == 200


def test_a_wrong_token_after_a_lowercase_scheme_is_still_401(client):
    assert client.get("/api/events", headers={"Authorization": "bearer wrong"}).status_code == 401


def test_a_body_sent_as_a_form_is_400_naming_the_content_type(client, admin_headers):
    response = client.post("/api/replay", data='{"status": "dead"}',
                           headers={**admin_headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert (response.status_code, response.json["error"]) == (400, "bad_request")
    assert "Content-Type: application/json" in response.json["message"]
    assert "application/x-www-form-urlencoded" in response.json["message"]


def test_a_body_nested_too_deep_for_the_json_decoder_is_400(client, admin_headers):
    response = client.post("/api/replay", data=b'{"status": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                           headers={**admin_headers, "Content-Type": "application/json"})
    assert (response.status_code, response.json["error"]) == (400, "bad_request")
    assert "nests too deep" in response.json["message"]


def test_a_since_whose_plus_arrived_as_a_space_is_read_as_an_offset(client, runtime, admin_headers, generic_headers):
    post(client, generic_headers, b'{"n": 1}')
    process_event(runtime.sessions, 1)
    # An unescaped '+' in a query string decodes to a space: "…T09:00:00+03:00" arrives as "…T09:00:00 03:00".
    long_ago = client.get("/api/events?since=2000-01-01T09:00:00+03:00", headers=admin_headers)
    far_ahead = client.get("/api/events?since=2999-01-01T09:00:00+03:00", headers=admin_headers)
    assert [event["id"] for event in long_ago.json["events"]] == [1]
    assert (far_ahead.status_code, far_ahead.json["events"]) == (200, [])


# --- keys a route does not read: refused, never ignored (a mistyped filter would widen a bulk action) -------------

@pytest.mark.parametrize("path, unknown, accepted", [
    ("/api/events?statu=dead", "statu", "status, source, provider, since, limit, before"),
    ("/api/deliveries?destinaton=hubspot-main", "destinaton", "status, destination, limit, before"),
    ("/api/contacts?emial=a@example.com", "emial", "email, phone, identity"),
])
def test_an_unknown_query_parameter_is_400_naming_it_and_those_accepted(client, admin_headers, path, unknown,
                                                                        accepted):
    response = client.get(path, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert response.json["message"] == f'unknown query parameter "{unknown}": accepted are {accepted}'


@pytest.mark.parametrize("route, body, unknown, accepted", [
    ("/api/replay", {"status": "dead", "sourc": "x"}, "sourc", "status, source, provider, since, dry_run"),
    ("/api/deliveries/retry", {"status": "dead", "destinaton": "x"}, "destinaton", "status, destination, dry_run"),
    ("/api/forget", {"emai": "a@example.com", "phone": "+79161234567"}, "emai", "email, phone, dry_run"),
])
def test_an_unknown_body_key_is_400_naming_it_and_those_accepted(client, admin_headers, route, body, unknown,
                                                                 accepted):
    response = client.post(route, json=body, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert response.json["message"] == f'unknown key "{unknown}": accepted are {accepted}'


def test_a_bulk_replay_with_a_mistyped_filter_replays_nothing(client, runtime, admin_headers, generic_headers):
    from ingest.schema import Event

    post(client, generic_headers, b"not json")
    process_event(runtime.sessions, 1)
    response = client.post("/api/replay", json={"status": "dead", "sourc": "elsewhere", "dry_run": False},
                           headers=admin_headers)
    assert response.status_code == 400
    with runtime.sessions() as session:
        assert session.get(Event, 1).status == "dead"


def test_a_mistyped_key_alone_is_named_rather_than_a_filter_asked_for(client, admin_headers):
    response = client.post("/api/replay", json={"statuss": "dead"}, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert response.json["message"].startswith('unknown key "statuss"')


def test_every_unknown_key_is_named(client, admin_headers):
    response = client.post("/api/replay", json={"statu": "dead", "sourc": "x"}, headers=admin_headers)
    assert response.json["message"].startswith('unknown keys "statu", "sourc": ')


def test_a_query_parameter_given_twice_is_400_naming_it(client, admin_headers):
    response = client.get("/api/events?status=dead&status=processed", headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert response.json["message"] == 'give each query parameter once: "status" given more than once'


def test_the_parameters_a_route_reads_are_all_accepted_together(client, admin_headers):
    listed = client.get("/api/events", query_string={"status": "dead", "source": "generic-main", "provider": "generic",
                                                     "since": "1h", "limit": 5, "before": 10}, headers=admin_headers)
    replayed = client.post("/api/replay", json={"status": "dead", "source": "generic-main", "provider": "generic",
                                                "since": "1h", "dry_run": True}, headers=admin_headers)
    assert (listed.status_code, replayed.status_code) == (200, 200)


def test_a_body_of_many_unknown_keys_names_ten_and_counts_the_rest(client, admin_headers):
    body = {"status": "dead", **{f"k{n:02}": "x" for n in range(25)}}
    message = client.post("/api/replay", json=body, headers=admin_headers).json["message"]
    assert message.startswith('unknown keys "k00", "k01", ') and '"k09" and 15 more: accepted are ' in message


@pytest.mark.parametrize("path", ["/api/events/1/replay", "/api/deliveries/1/retry"])
def test_a_body_sent_to_a_single_item_action_is_refused_not_ignored(client, runtime, admin_headers, generic_headers,
                                                                     path):
    from ingest.schema import Event

    post(client, generic_headers, b"not json")
    process_event(runtime.sessions, 1)
    response = client.post(path, json={"dry_run": True}, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert '"dry_run"' in response.json["message"]
    with runtime.sessions() as session:
        assert session.get(Event, 1).status == "dead"


def test_an_empty_json_object_sent_to_a_single_item_action_is_fine(client, runtime, admin_headers, generic_headers):
    post(client, generic_headers, b"not json")
    process_event(runtime.sessions, 1)
    assert client.post("/api/events/1/replay", json={}, headers=admin_headers).status_code == 202
