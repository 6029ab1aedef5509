"""Provider traffic for the benchmarks: the real sample payloads of all four providers (`tests/payloads/`), with a
person swapped in by the request builders the contact-store tests use (`tests/contacts/provider_requests.py`), sent
as raw HTTP/1.1 bytes by `bench.load`.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.load import http_request
from tests.contacts.provider_requests import (
    PROVIDER_SOURCES, Delivery as ProviderRequest, jivo_chat, livechat_chat, rocket_session, roistat_lead,
)

PROVIDERS = ("jivo", "livechat", "rocketchat", "roistat")
SOURCES = PROVIDER_SOURCES   # one source per provider, with the credentials the builders send
HOST = "127.0.0.1"


@dataclass(frozen=True)
class NewPerson:
    """Someone nobody has seen: a unique email (the key the benchmark finds them by in the CRM) and phone."""

    number: int
    run: str

    @property
    def email(self) -> str:
        return f"p{self.number}.{self.run}@e2e.example"

    @property
    def phone(self) -> str:
        digits = f"{self.number:07d}"
        return f"+7 916 {digits[:3]}-{digits[3:5]}-{digits[5:]}"

    @property
    def name(self) -> str:
        return f"Bench Person{self.number}"


def new_person_request(person: NewPerson) -> ProviderRequest:
    """A conversation (or lead) of this person with one of the four providers, in turn."""
    n, provider = person.number, PROVIDERS[person.number % len(PROVIDERS)]
    details = {"name": person.name, "email": person.email, "phone": person.phone}
    if provider == "jivo":
        return jivo_chat(2_000_000 + n, **details)
    if provider == "livechat":
        return livechat_chat(f"B{person.run}{n:08d}", customer_id=f"bench-{person.run}-{n}", **details)
    if provider == "rocketchat":
        return rocket_session(f"bench-room-{person.run}-{n}", token=f"bench-token-{person.run}-{n}",
                              visitor_id=f"bench-visitor-{person.run}-{n}", **details)
    return roistat_lead(f"{3_000_000 + n}", visit=str(5_000_000 + n), **details)


def wire_bytes(request: ProviderRequest, port: int) -> bytes:
    return http_request(request.method, HOST, port, request.url, request.headers, request.body)
