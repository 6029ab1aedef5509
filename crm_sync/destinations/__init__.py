"""The destination registry: one line per CRM module, imported only when a destination of that kind is configured.

A destination's `kind` is a name below, or a dotted path `package.module:Class` for a CRM module that lives outside
this project and implements the same interface.
"""
from __future__ import annotations

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
from ingest.plugins import load_registered

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
    return load_registered(kind, DESTINATIONS, Destination, UnknownDestination, "destination kind")
