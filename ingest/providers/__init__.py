"""The provider registry: one line per provider module.

A source's `provider` is a name below, or a dotted path `package.module:Class` for a provider that lives outside this
project (a private integration, or a test double) and implements the same interface.
"""
from __future__ import annotations

from functools import cache

from ingest.plugins import load_registered
from ingest.providers.base import (
    AuthenticationFailed,
    IgnoreEvent,
    ParseError,
    Provider,
    RawRequest,
    Reply,
    RequestRejected,
)

PROVIDERS: dict[str, str] = {
    "generic": "ingest.providers.generic:GenericJSONProvider",
    "jivo": "ingest.providers.jivo:JivoProvider",
    "livechat": "ingest.providers.livechat:LiveChatProvider",
    "rocketchat": "ingest.providers.rocketchat:RocketChatProvider",
    "roistat": "ingest.providers.roistat:RoistatProvider",
}

__all__ = [
    "PROVIDERS", "AuthenticationFailed", "IgnoreEvent", "ParseError", "Provider", "RawRequest", "Reply",
    "RequestRejected", "UnknownProvider", "get_provider",
]


class UnknownProvider(LookupError):
    pass


@cache
def get_provider(name: str) -> Provider:
    return load_registered(name, PROVIDERS, Provider, UnknownProvider, "provider")()
