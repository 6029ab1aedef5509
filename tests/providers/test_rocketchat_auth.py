"""Rocket.Chat authentication and configuration: the Secret Token header is the credential, is required, and is
never stored; the starter source and its setup instructions.

The HTTP tests run on SQLite and PostgreSQL (the `database_url` parametrisation).
"""
from __future__ import annotations

import json

import pytest

from ingest.settings import ConfigError, settings_from_dict
from tests.providers.rocketchat_support import TOKEN, post, provider, recorded_headers


def test_a_server_without_a_secret_token_sends_no_header_and_is_rejected_with_401(rocket):
    response = post(rocket, "Message.json", headers=recorded_headers("Message"))
    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication_failed"
    assert rocket.events() == []


def test_request_with_a_wrong_token_is_rejected_with_401(rocket):
    headers = {"Content-Type": "application/json", "X-RocketChat-Livechat-Token": TOKEN[:-1] + "X"}
    assert post(rocket, "Message.json", headers=headers).status_code == 401
    assert rocket.events() == []


def test_the_token_header_is_never_stored(rocket):
    assert post(rocket, "LivechatSession.json", headers=recorded_headers("LivechatSession")).status_code == 200
    (event,) = rocket.events()
    assert {name.lower() for name in event.headers} >= {"content-type"}
    assert "x-rocketchat-livechat-token" not in {name.lower() for name in event.headers}
    assert TOKEN not in json.dumps(event.headers)


def test_a_source_without_token_is_a_configuration_error():
    with pytest.raises(ConfigError, match=r"sources\.rocket-main\.token: .*Secret Token"):
        settings_from_dict({"sources": {"rocket-main": {"provider": "rocketchat"}}}, env={})


def test_a_short_token_is_a_configuration_error():
    with pytest.raises(ConfigError, match="at least 16 characters"):
        settings_from_dict({"sources": {"rocket-main": {"provider": "rocketchat", "token": "secret"}}}, env={})


def test_the_starter_source_is_valid_and_its_instructions_name_url_token_and_toggles():
    section = provider.starter_source("k" * 32)
    source = settings_from_dict({"sources": {"rocketchat-main": section}}, env={}).sources["rocketchat-main"]
    text = provider.setup_instructions("https://crm.example/hooks/rocketchat-main", source)
    for expected in ("Administration > Omnichannel > Webhooks", "https://crm.example/hooks/rocketchat-main",
                     "k" * 32, "Chat Close", "Visitor Messages", "Send Test"):
        assert expected in text
