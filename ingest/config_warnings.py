"""Settings that are valid but weak: secrets short enough to guess, CRM calls sent in clear. `check-config` prints
them as warnings (exit 0): a test setup may want either, a production one almost never.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from ingest.settings import Settings

# What `crm-ingest dev` generates is 32 characters; this many random characters are beyond guessing.
MIN_SECRET_CHARS = 16
LOOPBACK_NAMES = frozenset({"localhost"})


def weak_settings(settings: Settings) -> list[str]:
    found = []
    if settings.admin_token is not None:
        found += _short_secrets("", {"admin_token": settings.admin_token}, "the admin API")
    for source in settings.sources.values():
        found += _short_secrets(f"sources.{source.name}", _secrets_of(source), "webhooks to this source")
    for destination in settings.destinations.values():
        found += _clear_text_urls(f"destinations.{destination.name}", destination)
    return found


def _secrets_of(model: BaseModel) -> dict[str, SecretStr]:
    return {name: value for name in type(model).model_fields if isinstance(value := getattr(model, name), SecretStr)}


def _short_secrets(where: str, secrets: dict[str, SecretStr], guarded: str) -> list[str]:
    return [f"{'.'.join(filter(None, (where, name)))} is shorter than {MIN_SECRET_CHARS} characters: whoever guesses "
            f"it can reach {guarded}" for name, secret in secrets.items()
            if len(secret.get_secret_value()) < MIN_SECRET_CHARS]


def _clear_text_urls(where: str, destination: BaseModel) -> list[str]:
    """Every URL field (base_url, url, webhook_url) that sends the CRM's credentials unencrypted off this machine."""
    found = []
    for name in type(destination).model_fields:
        value = getattr(destination, name)
        url = value.get_secret_value() if isinstance(value, SecretStr) else value
        if name.endswith("url") and isinstance(url, str) and _in_clear_off_this_machine(url):
            found.append(f"{where}.{name} is http://: its credentials and the people it carries cross the network "
                         "unencrypted (use https://)")
    return found


def _in_clear_off_this_machine(url: str) -> bool:
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "http" or not parts.hostname:
        return False
    if parts.hostname in LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return True
