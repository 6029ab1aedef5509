"""Credentials that providers put inside the stored request (Roistat's token, LiveChat's secret_key and token) are
stored byte-exact for replay and masked wherever an event is shown."""
from __future__ import annotations

import base64
import json

from ingest.credential_mask import CREDENTIAL_MASK
from tests.conftest import ADMIN_TOKEN, payload
from tests.providers import jivo_support as jivo, roistat_support as roistat
from tests.providers.livechat_support import SECRET, SOURCES as LIVECHAT_SOURCES, V3_ONLY, basic, signed

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FORM = "application/x-www-form-urlencoded"
LEGACY_API_TOKEN = "27f41c8da685c81a890f9e5f8ce48387"  # the agent's access token in the legacy samples


def shown_request(harness, event_id: int = 1) -> dict:
    response = harness.client.get(f"/api/events/{event_id}", headers=ADMIN)
    assert response.status_code == 200
    return response.json["request"]


def test_roistat_token_in_the_query_is_masked_when_shown_and_kept_when_stored(provider_harness):
    harness = provider_harness(roistat.SOURCES)
    query = roistat.sample("lead.query")
    assert harness.client.get(f"{roistat.HOOK}?{query}").status_code == 200
    shown = shown_request(harness)["query_string"]
    assert roistat.TOKEN not in shown
    assert f"token={CREDENTIAL_MASK}" in shown
    assert f"user={roistat.USER}" in shown  # a login, not a secret
    assert harness.event(1).query_string == query


def test_roistat_token_in_a_form_body_is_masked_when_shown(provider_harness):
    harness = provider_harness(roistat.SOURCES)
    form = roistat.sample("lead.form")
    assert harness.client.post(roistat.HOOK, data=form, content_type=FORM).status_code == 200
    shown = shown_request(harness)
    assert roistat.TOKEN not in shown["body"]
    assert f"token={CREDENTIAL_MASK}" in shown["body"]
    assert shown["body_size"] == len(form.encode())
    assert harness.event(1).body == form.encode()


def test_roistat_token_in_a_body_that_is_not_utf8_is_masked_in_its_base64(provider_harness):
    harness = provider_harness(roistat.SOURCES)
    form = f"action=lead&user={roistat.USER}&token={roistat.TOKEN}&title=".encode() + "Заявка".encode("cp1251")
    assert harness.client.post(roistat.HOOK, data=form, content_type=FORM).status_code == 200
    shown = base64.b64decode(shown_request(harness)["body_base64"])
    assert roistat.TOKEN.encode() not in shown
    assert shown.startswith(f"action=lead&user={roistat.USER}&token={CREDENTIAL_MASK}&title=".encode())


def test_livechat_secret_key_in_a_v3_body_is_masked_when_shown(provider_harness):
    harness = provider_harness(LIVECHAT_SOURCES)
    body = signed("incoming_chat.json")
    assert harness.client.post(f"/hooks/{V3_ONLY}", data=body, content_type="application/json").status_code == 200
    shown = shown_request(harness)["body"]
    assert SECRET not in shown
    assert json.loads(shown)["secret_key"] == CREDENTIAL_MASK
    assert harness.event(1).body == body


def test_livechat_secret_key_in_a_body_that_is_not_valid_json_is_masked_when_shown(provider_harness):
    harness = provider_harness(LIVECHAT_SOURCES)
    body = b'{"action": "incoming_chat", "secret_key": "' + SECRET.encode() + b'", "payload": {'
    assert harness.client.post(f"/hooks/{V3_ONLY}", data=body, content_type="application/json").status_code == 200
    shown = shown_request(harness)["body"]
    assert SECRET not in shown
    assert f'"secret_key": "{CREDENTIAL_MASK}"' in shown


def test_livechat_agent_token_in_a_legacy_body_is_masked_when_shown(provider_harness):
    harness = provider_harness(LIVECHAT_SOURCES)
    body = payload("livechat/legacy_chat_started.json")
    assert LEGACY_API_TOKEN.encode() in body
    response = harness.client.post("/hooks/livechat-legacy", data=body, content_type="application/json",
                                   headers=basic())
    assert response.status_code == 200
    assert json.loads(shown_request(harness)["body"])["token"] == CREDENTIAL_MASK


def test_a_request_that_cannot_be_parsed_is_dead_with_its_credential_still_masked(provider_harness):
    harness = provider_harness(roistat.SOURCES)
    assert harness.client.get(f"{roistat.HOOK}?{roistat.sample('unknown_action.query')}").status_code == 400
    assert [event.status for event in harness.process_all()] == ["dead"]
    assert roistat.TOKEN not in shown_request(harness)["query_string"]


def test_roistat_token_repeated_in_a_proxy_header_is_masked_when_shown(provider_harness):
    harness = provider_harness(roistat.SOURCES)
    query = roistat.sample("lead.query")
    assert harness.client.get(f"{roistat.HOOK}?{query}",
                              headers={"X-Original-URI": f"{roistat.HOOK}?{query}"}).status_code == 200
    shown = shown_request(harness)["headers"]["X-Original-Uri"]
    assert roistat.TOKEN not in shown and f"token={CREDENTIAL_MASK}" in shown


def test_jivo_url_secret_repeated_in_a_proxy_header_is_not_stored(provider_harness):
    harness = provider_harness(jivo.SOURCES)
    response = harness.client.post(jivo.URL, json=jivo.sample("chat_accepted.json"),
                                   headers={"X-Forwarded-Uri": jivo.URL, "Referer": f"https://crm.example{jivo.URL}"})
    assert response.status_code == 200
    stored = harness.event(1).headers
    assert stored["X-Forwarded-Uri"] == "/hooks/jivo-main/<url_secret>"
    assert stored["Referer"] == "https://crm.example/hooks/jivo-main/<url_secret>"
