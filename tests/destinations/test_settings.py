"""`[destinations.<name>]`: validated against each CRM module's settings, every problem reported with its place."""
from __future__ import annotations

import pytest
from pydantic import SecretStr

from crm_sync.destinations import get_destination_class
from crm_sync.destinations.base import RateLimit
from crm_sync.destinations.bitrix24 import Bitrix24Settings
from crm_sync.destinations.hubspot import HubSpotSettings
from crm_sync.destinations.kommo import KommoSettings
from crm_sync.destinations.pipedrive import PipedriveSettings
from crm_sync.destinations.webhook import WebhookSettings
from ingest.settings import ConfigError, load_settings, settings_from_dict

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOML = f"""
[destinations.audit-hook]
kind   = "webhook"
url    = "https://example.internal/crm-events"
secret = "{WHSEC}"

[destinations.hubspot-main]
kind     = "hubspot"
base_url = "https://api.hubapi.com"
token    = "${{HUBSPOT_TOKEN}}"
rate     = "100/10s"
primary  = true

[destinations.b24]
kind        = "bitrix24"
webhook_url = "https://acme.bitrix24.ru/rest/1/abcdef123456/"
rate        = "2/s"

[destinations.pipedrive]
kind      = "pipedrive"
base_url  = "https://acme.pipedrive.com"
api_token = "0123456789abcdef"

[destinations.kommo]
kind         = "kommo"
base_url     = "https://acme.kommo.com"
token        = "long-lived-token"
key_field_id = 771001
rate         = "7/s"
"""


def test_every_destination_is_validated_by_its_own_module(tmp_path):
    path = tmp_path / "crm-ingest.toml"
    path.write_text(TOML)

    settings = load_settings(path, env={"HUBSPOT_TOKEN": "pat-eu1-secret"})

    kinds = {name: type(d) for name, d in settings.destinations.items()}
    assert kinds == {"audit-hook": WebhookSettings, "hubspot-main": HubSpotSettings, "b24": Bitrix24Settings,
                     "pipedrive": PipedriveSettings, "kommo": KommoSettings}
    hubspot = settings.destination("hubspot-main")
    assert isinstance(hubspot.token, SecretStr) and hubspot.token.get_secret_value() == "pat-eu1-secret"
    assert hubspot.rate_limit == RateLimit(100, 10.0) and hubspot.primary
    assert settings.destination("b24").rate_limit == RateLimit(2, 1.0)
    assert settings.destination("pipedrive").rate_limit is None


def test_secrets_never_appear_in_the_settings_repr(tmp_path):
    path = tmp_path / "crm-ingest.toml"
    path.write_text(TOML)

    text = repr(load_settings(path, env={"HUBSPOT_TOKEN": "pat-eu1-secret"}))

    for secret in ("pat-eu1-secret", "abcdef123456", "0123456789abcdef", "long-lived-token", WHSEC):
        assert secret not in text


def test_every_destination_problem_is_reported_at_once_with_its_place():
    raw = {"destinations": {
        "no-kind": {"url": "https://x"},
        "odd-kind": {"kind": "salesforce"},
        "typo": {"kind": "hubspot", "token": "t", "tokn": "t"},
        "no-token": {"kind": "hubspot"},
        "bad-rate": {"kind": "pipedrive", "base_url": "https://a.pipedrive.com", "api_token": "t", "rate": "fast"},
        "bad-secret": {"kind": "webhook", "url": "ftp://x", "secret": "plain"},
        "bad-bitrix": {"kind": "bitrix24", "webhook_url": "https://acme.bitrix24.ru/"},
        "no-field": {"kind": "kommo", "base_url": "https://a.kommo.com", "token": "t"},
        "slow": {"kind": "hubspot", "token": "t", "timeout_seconds": 0},
        "backwards": {"kind": "hubspot", "token": "t", "batch_window_seconds": -1},
        "bad name!": {"kind": "hubspot", "token": "t"},
    }}

    with pytest.raises(ConfigError) as caught:
        settings_from_dict(raw, env={})

    text = str(caught.value)
    for place in ("destinations.no-kind: needs kind", "destinations.odd-kind.kind: unknown destination kind",
                  "destinations.typo.tokn: unknown key", "destinations.no-token.token: a hubspot destination needs token",
                  "destinations.bad-rate.rate: rate 'fast' must look like", "destinations.bad-secret.url",
                  "destinations.bad-secret.secret", "destinations.bad-bitrix.webhook_url",
                  "destinations.no-field.key_field_id", "destinations.slow.timeout_seconds",
                  "destinations.backwards.batch_window_seconds",
                  "destinations.bad name!:"):
        assert place in text, place
    assert "plain" not in text


def test_only_one_destination_may_be_primary():
    hubspot = {"kind": "hubspot", "token": "t", "primary": True}

    with pytest.raises(ConfigError, match="only one destination may be primary"):
        settings_from_dict({"destinations": {"a": hubspot, "b": hubspot}}, env={})


@pytest.mark.parametrize("text, expected", [("100/10s", RateLimit(100, 10.0)), ("5/s", RateLimit(5, 1.0)),
                                            ("650000/1d", RateLimit(650_000, 86_400.0)),
                                            ("10 / 500ms", RateLimit(10, 0.5)), ("60/1m", RateLimit(60, 60.0))])
def test_a_rate_is_a_count_per_duration(text, expected):
    assert RateLimit.parse(text) == expected


@pytest.mark.parametrize("text", ["100", "100/", "/10s", "0/10s", "10/0s", "10/10 parsecs", "ten/s"])
def test_a_malformed_rate_is_rejected(text):
    with pytest.raises(ValueError, match="rate"):
        RateLimit.parse(text)


def test_a_destination_module_outside_the_project_is_loaded_by_dotted_path():
    assert get_destination_class("crm_sync.destinations.webhook:WebhookDestination").kind == "webhook"
