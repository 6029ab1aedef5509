"""The provider registry: one line per provider module.

A source's `provider` is a name below, or a dotted path `package.module:Class` for a provider that lives outside this
project (a private integration, or a test double) and implements the same interface.
"""
from __future__ import annotations

import importlib
from functools import cache

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
    target = PROVIDERS.get(name, name)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise UnknownProvider(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownProvider(f"cannot load provider {name!r} from {target!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise UnknownProvider(f"{target!r} is not a Provider subclass")
    return cls()
