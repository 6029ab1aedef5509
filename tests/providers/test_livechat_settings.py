"""LiveChat source settings: which credentials a source needs, and what the starter source and the setup
instructions give.
"""
from __future__ import annotations

import pytest

from ingest.settings import ConfigError
from tests.providers.livechat_support import provider, source_settings


def test_a_source_needs_secret_key_or_basic_auth():
    with pytest.raises(ConfigError, match="secret_key .*and/or basic_auth"):
        source_settings()


@pytest.mark.parametrize("value", ["livechat", "livechat:", ":password", ""])
def test_basic_auth_must_be_user_colon_password(value):
    with pytest.raises(ConfigError, match="basic_auth"):
        source_settings(basic_auth=value)


def test_a_blank_secret_key_is_refused():
    with pytest.raises(ConfigError, match="secret_key is empty"):
        source_settings(secret_key="  ")


def test_the_starter_source_is_a_valid_v3_source():
    settings = source_settings(**{k: v for k, v in provider.starter_source("t0ken-t0ken").items() if k != "provider"})
    assert settings.secret_key.get_secret_value() == "t0ken-t0ken"


def test_setup_instructions_give_the_secret_key_and_the_legacy_url_with_escaped_credentials():
    settings = source_settings(secret_key="s3cret", basic_auth="lc:p@ss:w/rd")
    text = provider.setup_instructions("https://crm.example.com/hooks/lc", settings)
    assert "Chat webhooks" in text and "Secret key = s3cret" in text
    assert "https://lc:p%40ss%3Aw%2Frd@crm.example.com/hooks/lc" in text
