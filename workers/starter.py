"""The starter config `crm-ingest dev` writes for a new user: one source per provider, fresh secrets."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from ingest.providers import PROVIDERS, get_provider
from ingest.settings import Settings


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
