"""JivoChat's secret URL is the credential: a source needs one, a wrong or missing one is not found and nothing
is stored, and the setup instructions say where to paste it.
"""
from __future__ import annotations

import pytest
from pydantic import SecretStr

from ingest.providers import AuthenticationFailed, RawRequest, get_provider
from ingest.providers.jivo import JivoSettings
from ingest.settings import ConfigError, settings_from_dict
from tests.conftest import payload
from tests.providers.jivo_support import SECRET, URL, post


def test_a_jivo_source_without_url_secret_is_refused_at_start_up():
    with pytest.raises(ConfigError, match="sources.jivo-main: a jivo source needs url_secret"):
        settings_from_dict({"sources": {"jivo-main": {"provider": "jivo"}}}, env={})


def test_the_starter_source_is_a_valid_jivo_source_with_a_url_secret():
    section = get_provider("jivo").starter_source("a-fresh-random-token-0123456789")
    source = JivoSettings(name="jivo-main", **section)
    assert source.url_secret.get_secret_value() == "a-fresh-random-token-0123456789"


def test_authentication_fails_closed_for_a_source_that_somehow_has_no_url_secret():
    unvalidated = JivoSettings.model_construct(name="jivo-main", provider="jivo", url_secret=None)
    request = RawRequest("POST", "/hooks/jivo-main", "", {}, payload("jivo/chat_accepted.json"), "application/json")
    with pytest.raises(AuthenticationFailed):
        get_provider("jivo").authenticate(request, unvalidated)
    get_provider("jivo").authenticate(request, JivoSettings.model_construct(
        name="jivo-main", provider="jivo", url_secret=SecretStr(SECRET)))


@pytest.mark.parametrize("url", [f"/hooks/jivo-main/{SECRET[:-1]}x", "/hooks/jivo-main", f"/hooks/jivo-other/{SECRET}"])
def test_a_wrong_or_missing_url_secret_is_not_found_and_not_stored(jivo, url):
    response = post(jivo, payload("jivo/chat_accepted.json"), url=url)
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown_source"
    assert jivo.events() == []


def test_a_get_request_is_refused(jivo):
    response = jivo.client.get(URL)
    assert response.status_code == 405
    assert jivo.events() == []


def test_setup_instructions_name_both_places_to_paste_the_url():
    source = JivoSettings(name="jivo-main", provider="jivo", url_secret=SECRET)
    text = get_provider("jivo").setup_instructions(f"https://ingest.example.com{URL}", source)
    assert f"https://ingest.example.com{URL}" in text
    assert "Integration settings for developers" in text and "CRM Webhooks" in text
