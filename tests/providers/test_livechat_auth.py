"""LiveChat authentication over HTTP: a v3 webhook proves itself with its `secret_key`, a legacy v2 one with Basic
auth; a request that proves neither gets 401 and is not stored, whatever its body.

Every test here runs on SQLite and PostgreSQL (the `database_url` parametrisation).
"""
from __future__ import annotations

import json

from tests.conftest import payload
from tests.providers.livechat_support import BOTH, LEGACY_ONLY, SECRET, V3_ONLY, basic, edited, key, post, signed


def test_v3_webhook_with_the_right_secret_key_is_stored_and_answered_ok(livechat):
    response = post(livechat, signed("incoming_chat.json"))
    assert (response.status_code, response.get_json()) == (200, {"ok": True})
    assert [event.dedup_key for event in livechat.events()] == [key(signed("incoming_chat.json"))]


DEEPLY_NESTED = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"


def test_a_deeply_nested_body_with_basic_credentials_is_stored_and_goes_dead_with_the_reason(livechat):
    assert post(livechat, DEEPLY_NESTED, headers=basic()).status_code == 200
    [event] = livechat.process_all()
    assert event.body == DEEPLY_NESTED
    assert (event.status, event.error_class) == ("dead", "parse_error")


def test_a_deeply_nested_body_without_credentials_gets_401(livechat):
    assert post(livechat, DEEPLY_NESTED).status_code == 401


TOO_LONG_A_NUMBER = b'{"event_type": "chat_started", "visitor": {"id": ' + b"7" * 5000 + b"}}"


def test_a_body_with_a_number_too_long_to_read_and_basic_credentials_is_stored_and_goes_dead(livechat):
    assert post(livechat, TOO_LONG_A_NUMBER, source=LEGACY_ONLY, headers=basic()).status_code == 200
    [event] = livechat.process_all()
    assert (event.body, event.status, event.error_class) == (TOO_LONG_A_NUMBER, "dead", "parse_error")


def test_a_secret_key_holding_a_lone_surrogate_gets_401_not_500(livechat):
    response = post(livechat, b'{"action": "incoming_chat", "secret_key": "\\ud800"}')
    assert (response.status_code, response.get_json()["error"]) == (401, "authentication_failed")
    assert livechat.events() == []


def test_v3_webhook_with_a_wrong_secret_key_gets_401_and_is_not_stored(livechat):
    response = post(livechat, signed("incoming_chat.json", secret="someone-elses-secret"))
    assert (response.status_code, response.get_json()["error"]) == (401, "authentication_failed")
    assert livechat.events() == []


def test_v3_webhook_without_a_secret_key_gets_401(livechat):
    response = post(livechat, edited("incoming_chat.json", lambda body: body.pop("secret_key")))
    assert response.status_code == 401
    assert livechat.events() == []


def test_v3_webhook_is_not_authenticated_by_basic_auth(livechat):
    response = post(livechat, signed("thread_tagged.json", secret="wrong"), headers=basic())
    assert response.status_code == 401
    assert livechat.events() == []


def test_v3_webhook_to_a_source_without_secret_key_gets_401(livechat):
    response = post(livechat, signed("thread_tagged.json"), source=LEGACY_ONLY, headers=basic())
    assert response.status_code == 401
    assert livechat.events() == []


def test_legacy_webhook_with_the_right_basic_auth_is_stored_and_answered_ok(livechat):
    response = post(livechat, payload("livechat/legacy_chat_ended.json"), source=LEGACY_ONLY, headers=basic())
    assert (response.status_code, response.get_json()) == (200, {"ok": True})
    assert len(livechat.events()) == 1


def test_legacy_webhook_with_a_wrong_password_gets_401(livechat):
    response = post(livechat, payload("livechat/legacy_chat_ended.json"), headers=basic(password="guess"))
    assert response.status_code == 401
    assert livechat.events() == []


def test_legacy_webhook_without_basic_auth_gets_401_whatever_its_token_says(livechat):
    # `token` and `license_id` in a legacy body are API credentials LiveChat hands out, not a signature.
    response = post(livechat, payload("livechat/legacy_chat_ended.json"))
    assert response.status_code == 401
    assert livechat.events() == []


def test_legacy_webhook_to_a_source_without_basic_auth_gets_401(livechat):
    response = post(livechat, payload("livechat/legacy_chat_ended.json"), source=V3_ONLY, headers=basic())
    assert response.status_code == 401
    assert livechat.events() == []


def test_malformed_basic_auth_header_gets_401(livechat):
    response = post(livechat, payload("livechat/legacy_chat_ended.json"), headers={"Authorization": "Basic %%%"})
    assert response.status_code == 401


def test_unparseable_body_with_the_right_basic_auth_is_stored_and_goes_dead(livechat):
    response = post(livechat, b'{"event_type": "chat_started", "chat": {', headers=basic())
    assert (response.status_code, response.get_json()) == (200, {"ok": True})
    [event] = livechat.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "not valid JSON" in event.error_message


def test_unparseable_body_carrying_the_right_secret_key_is_stored_and_goes_dead(livechat):
    response = post(livechat, b'{"action": "incoming_chat", "secret_key": "' + SECRET.encode() + b'", ',
                    source=V3_ONLY)
    assert response.status_code == 200
    [event] = livechat.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")


def test_unparseable_body_with_a_wrong_secret_key_gets_401(livechat):
    response = post(livechat, b'{"action": "incoming_chat", "secret_key": "guess", ', source=V3_ONLY)
    assert response.status_code == 401
    assert livechat.events() == []


def test_unparseable_body_without_any_credential_gets_401(livechat):
    response = post(livechat, b'{"action": "incoming_chat", "chat": {')
    assert response.status_code == 401
    assert livechat.events() == []


def test_unparseable_body_to_a_secret_key_only_source_gets_401_even_with_basic_auth(livechat):
    response = post(livechat, b"not json", source=V3_ONLY, headers=basic())
    assert response.status_code == 401
    assert livechat.events() == []


def test_json_that_is_not_a_livechat_webhook_goes_dead_with_the_reason(livechat):
    response = post(livechat, json.dumps({"secret_key": SECRET, "hello": "world"}).encode())
    assert response.status_code == 200
    [event] = livechat.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "neither `action`" in event.error_message


def test_the_authorization_header_is_never_stored(livechat):
    post(livechat, payload("livechat/legacy_chat_ended.json"), headers=basic())
    [event] = livechat.events()
    assert "authorization" not in {name.lower() for name in event.headers}
    assert event.headers.get("Content-Type") == "application/json"


def test_get_is_not_a_livechat_webhook(livechat):
    assert livechat.client.get(f"/hooks/{BOTH}").status_code == 405
