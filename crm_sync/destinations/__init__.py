"""The destination registry: one line per CRM module, imported only when a destination of that kind is configured.

A destination's `kind` is a name below, or a dotted path `package.module:Class` for a CRM module that lives outside
this project and implements the same interface.
"""
from __future__ import annotations

import importlib
from functools import cache

from crm_sync.destinations.base import (
    ContactSnapshot,
    DeliveryError,
    DeliveryRequest,
    DeliveryResult,
    Destination,
    DestinationSettings,
    InteractionSnapshot,
    PermanentError,
    RateLimit,
    TransientError,
)

DESTINATIONS: dict[str, str] = {
    "webhook": "crm_sync.destinations.webhook:WebhookDestination",
    "hubspot": "crm_sync.destinations.hubspot:HubSpotDestination",
    "bitrix24": "crm_sync.destinations.bitrix24:Bitrix24Destination",
    "pipedrive": "crm_sync.destinations.pipedrive:PipedriveDestination",
    "kommo": "crm_sync.destinations.kommo:KommoDestination",
}

__all__ = [
    "DESTINATIONS", "ContactSnapshot", "DeliveryError", "DeliveryRequest", "DeliveryResult", "Destination",
    "DestinationSettings", "InteractionSnapshot", "PermanentError", "RateLimit", "TransientError",
    "UnknownDestination", "get_destination_class",
]


class UnknownDestination(LookupError):
    pass


@cache
def get_destination_class(kind: str) -> type[Destination]:
    target = DESTINATIONS.get(kind, kind)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise UnknownDestination(f"unknown destination kind {kind!r}; known: {', '.join(sorted(DESTINATIONS))}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownDestination(f"cannot load destination kind {kind!r} from {target!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Destination)):
        raise UnknownDestination(f"{target!r} is not a Destination subclass")
    return cls
