"""The starter config `crm-ingest dev` writes for a new user: one source per provider, fresh secrets."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from ingest.providers import PROVIDERS, get_provider
from ingest.settings import Settings

# Addresses that mean "every interface" to bind() and that nothing can connect to, each with the loopback address
# that reaches such a listener from this machine.
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
# Providers that run only as hosted services, calling from the internet: a loopback or private address never reaches
# this machine from there (Rocket.Chat also runs self-hosted, which may be on the same network).
HOSTED_PROVIDERS = {"jivo": "JivoChat", "livechat": "LiveChat", "rocketchat": "Rocket.Chat Cloud", "roistat": "Roistat"}


def starter_config_text() -> str:
    lines = [
        "# Written by `crm-ingest dev`. Every key is explained in README.md (Configuration).",
        "# The defaults below run on SQLite and an embedded broker; set database_url and broker_url for production.",
        f"admin_token = {json.dumps(secrets.token_urlsafe(32))}",
        'default_phone_region = "RU"',
        "",
    ]
    for name in sorted(PROVIDERS):
        section = get_provider(name).starter_source(secrets.token_urlsafe(24))
        lines.append(f"[sources.{name}-main]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in section.items())
        lines.append("")
    return "\n".join(lines)


def write_starter_config(path: Path) -> bool:
    """Write the starter config unless one exists; True if written."""
    if path.exists():
        return False
    # Created private: written first and restricted after, its secrets were readable by anyone for a moment.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as file:
        file.write(starter_config_text())
    return True


def source_url(base_url: str, source) -> str:
    url = f"{base_url.rstrip('/')}/hooks/{source.name}"
    return f"{url}/{source.url_secret.get_secret_value()}" if source.url_secret else url


def setup_lines(settings: Settings, base_url: str) -> list[str]:
    """For each source: the URL and credentials to paste into the provider's settings."""
    lines = []
    for source in settings.sources.values():
        provider = get_provider(source.provider)
        lines.append(f"{source.name} ({provider.name}): {provider.setup_instructions(source_url(base_url, source), source)}")
    return lines


def local_base_url(host: str, port: int) -> str:
    """The web process's address as seen from this machine: a wildcard bind is reached on the loopback."""
    host = WILDCARD_HOSTS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def public_base_url(url: str) -> str:
    """`url` checked as the base every printed provider URL is built on; ValueError says what is wrong with it.

    A path is kept (a reverse proxy may serve the service under one); a query, a fragment or credentials would land in
    the middle of every URL built on it, and a URL that already ends in /hooks/... would get a second one.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) address with a host, such as https://hooks.example.com")
    try:
        parts.port  # raises on a port that is not a number
    except ValueError:
        raise ValueError(f"{url!r} has a port that is not a number") from None
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{url!r}: give the address alone, with no ?query, #fragment or user@")
    if "hooks" in parts.path.split("/"):
        raise ValueError(f"{url!r}: give the address the service is served at, without /hooks/...: "
                         "each source's own path is added to it")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def hosted_providers(settings: Settings) -> list[str]:
    """The names of the configured providers that call from the internet only."""
    configured = {source.provider for source in settings.sources.values()}
    return [label for name, label in HOSTED_PROVIDERS.items() if name in configured]
