"""CRM modules with bugs, loaded by dotted path (`kind = "tests.delivery.broken_modules:…"`), to show what the engine
does with a module that cannot start or answers what the store cannot hold."""
from __future__ import annotations

from crm_sync.destinations.base import DeliveryRequest, DeliveryResult, Destination, TransientError


class FailsToStart(Destination):
    kind = "fails-to-start"

    def __init__(self, settings, http) -> None:
        raise RuntimeError("this module cannot start")


class FailsWithoutAMessage(Destination):
    """A module that builds its error message from a CRM body field that is missing: the message is None."""

    kind = "fails-without-a-message"

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        raise TransientError("crm_unavailable", None)  # type: ignore[arg-type]
