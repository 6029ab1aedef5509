"""Fake CRM servers on loopback, and each destination module pointed at its fake.

The HTTP client is built the way the delivery engine builds it: from the destination's `timeout_seconds`. Tests keep
that short, so that a fault that holds a request (a timeout) costs a fraction of a second.
"""
from __future__ import annotations

from typing import Callable, Iterator

import httpx
import pytest

from crm_sync.destinations import get_destination_class
from crm_sync.destinations.base import Destination
from tests.fakes import hubspot as fake_hubspot
from tests.fakes import kommo as fake_kommo
from tests.fakes import pipedrive as fake_pipedrive
from tests.fakes.base import FakeCRM
from tests.fakes.bitrix24 import Bitrix24Fake
from tests.fakes.webhook import WebhookReceiver

CLIENT_TIMEOUT = 0.5
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Build = Callable[..., Destination]


@pytest.fixture
def build_destination() -> Iterator[Build]:
    """`build_destination(kind, **settings)`: a destination on its own client, closed after the test."""
    made: list[Destination] = []

    def build(kind: str, **settings) -> Destination:
        cls = get_destination_class(kind)
        parsed = cls.settings_model(name=f"{kind}-test", kind=kind, timeout_seconds=CLIENT_TIMEOUT, **settings)
        made.append(cls(parsed, httpx.Client(timeout=parsed.timeout_seconds)))
        return made[-1]

    yield build
    for destination in made:
        destination.http.close()


def _running(fake: FakeCRM) -> Iterator[FakeCRM]:
    with fake.running():
        yield fake


@pytest.fixture
def hubspot_fake() -> Iterator[fake_hubspot.HubSpotFake]:
    yield from _running(fake_hubspot.HubSpotFake())


@pytest.fixture
def hubspot(hubspot_fake, build_destination):
    return build_destination("hubspot", base_url=hubspot_fake.url, token=fake_hubspot.TOKEN, portal_id=4242)


@pytest.fixture
def bitrix_fake() -> Iterator[Bitrix24Fake]:
    yield from _running(Bitrix24Fake())


@pytest.fixture
def bitrix(bitrix_fake, build_destination):
    return build_destination("bitrix24", webhook_url=bitrix_fake.webhook_url)


@pytest.fixture
def pipedrive_fake() -> Iterator[fake_pipedrive.PipedriveFake]:
    yield from _running(fake_pipedrive.PipedriveFake())


@pytest.fixture
def pipedrive(pipedrive_fake, build_destination):
    return build_destination("pipedrive", base_url=pipedrive_fake.url, api_token=fake_pipedrive.TOKEN)


@pytest.fixture
def kommo_fake() -> Iterator[fake_kommo.KommoFake]:
    yield from _running(fake_kommo.KommoFake())


@pytest.fixture
def kommo(kommo_fake, build_destination):
    return build_destination("kommo", base_url=kommo_fake.url, token=fake_kommo.TOKEN,
                             key_field_id=fake_kommo.KEY_FIELD_ID)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from _running(WebhookReceiver())


@pytest.fixture
def webhook(receiver, build_destination):
    return build_destination("webhook", url=f"{receiver.url}/hooks/crm", secret=WEBHOOK_SECRET)
