"""Roistat authentication: `token` = md5(user + password) in the query or a form body, `user` optional; anything
else is 401 and nothing is stored. Through the real app on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from ingest.providers.roistat.provider import MAX_FORM_FIELDS
from ingest.settings import ConfigError, settings_from_dict
from tests.providers.roistat_support import HOOK, SOURCES, TOKEN, USER, sample, with_param

SAMPLE_ACCOUNT_TOKEN = "e1672b5bfe68ff2a96a65a639f54793b"


@pytest.fixture
def harness(provider_harness):
    return provider_harness(SOURCES)


def test_a_request_signed_with_md5_of_user_and_password_is_accepted(harness):
    response = harness.client.get(HOOK, query_string=sample("lead.query"))
    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_a_wrong_token_gets_401_and_nothing_is_stored(harness):
    response = harness.client.get(HOOK, query_string=sample("lead.query", token=SAMPLE_ACCOUNT_TOKEN))
    assert response.status_code == 401
    assert response.json["error"] == "authentication_failed"
    assert "status" not in response.json
    assert harness.events() == []


def test_the_right_token_with_another_user_gets_401(harness):
    response = harness.client.get(HOOK, query_string=with_param(sample("lead.query"), "user", "someone-else"))
    assert response.status_code == 401


@pytest.mark.parametrize("query", [with_param(sample("lead.query"), "user", ""),
                                   sample("lead.query").replace("user=roistat&", "")])
def test_the_right_token_with_an_empty_or_missing_user_is_accepted_as_in_roistats_example(harness, query):
    assert "user=roistat" not in query
    assert harness.client.get(HOOK, query_string=query).status_code == 200


def test_a_request_without_credentials_gets_401(harness):
    query = "action=lead&id=90&name=Robert"
    assert harness.client.get(HOOK, query_string=query).status_code == 401


def test_a_form_of_more_fields_than_any_roistat_request_is_refused_before_it_is_read(harness):
    form = f"action=lead&user={USER}&token={TOKEN}&" + "&".join(f"f{n}=1" for n in range(MAX_FORM_FIELDS))
    response = harness.client.post(HOOK, data=form, content_type="application/x-www-form-urlencoded")
    assert (response.status_code, harness.events()) == (401, [])


def test_credentials_in_the_query_accept_a_form_body_of_any_size(harness):
    form = "&".join(f"f{n}=1" for n in range(MAX_FORM_FIELDS))
    response = harness.client.post(HOOK, query_string=sample("lead.query"), data=form,
                                   content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200


def test_an_upper_case_token_is_accepted(harness):
    query = with_param(sample("lead.query"), "token", TOKEN.upper())
    assert harness.client.get(HOOK, query_string=query).status_code == 200


def test_a_source_without_a_password_is_a_configuration_error():
    with pytest.raises(ConfigError, match="password"):
        settings_from_dict({"sources": {"r": {"provider": "roistat", "user": USER}}}, env={})
    with pytest.raises(ConfigError, match="password"):
        settings_from_dict({"sources": {"r": {"provider": "roistat", "user": USER, "password": ""}}}, env={})


