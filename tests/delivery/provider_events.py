"""Provider traffic for the delivery tests: real requests of all four providers about generated people.

Each person has one phone, written a different way in almost every request (`+7 916 …`, `8 (916) …`, digits only),
and sometimes an email, so the contact store has to recognise them; every request carries the phone, so a person is
one contact from their first event on. Conversations progress (Jivo chats are accepted, then finished with a
transcript), and some requests are redelivered, as providers do.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass

from tests.conftest import payload
from tests.contacts.provider_requests import (
    JIVO_SECRET, JSON, Delivery as ProviderRequest, jivo_chat, livechat_chat, rocket_session, roistat_lead,
)

PROVIDERS = ("jivo", "livechat", "rocketchat", "roistat")


def jivo_finished(chat_id: int, phone: str, messages: list[tuple[str, str, int]], name: str = "Ivan",
                  email: str = "") -> ProviderRequest:
    """chat_finished with these (type, text, timestamp) messages."""
    body = json.loads(payload("jivo/chat_finished.json"))
    body["chat_id"] = chat_id
    body["visitor"].update(name=name, email=email, phone=phone, number="")
    body["chat"]["messages"] = [{"type": kind, "message": text, "timestamp": at} for kind, text, at in messages]
    return ProviderRequest("POST", f"/hooks/jivo-main/{JIVO_SECRET}", json.dumps(body).encode(), JSON)


@dataclass(frozen=True)
class Person:
    number: int

    @property
    def name(self) -> str:
        return f"Person {self.number}"

    @property
    def national(self) -> str:
        return f"916{self.number:07d}"

    @property
    def e164(self) -> str:
        return f"+7{self.national}"

    @property
    def email(self) -> str | None:
        return f"person{self.number}@soak.example" if self.number % 3 == 0 else None

    def phone(self, rng: random.Random) -> str:
        n = self.national
        return rng.choice([f"+7 {n[:3]} {n[3:6]}-{n[6:8]}-{n[8:]}", f"8 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}",
                           f"+7{n}", f"8{n}", f"7 {n[:3]} {n[3:]}", f"+7({n[:3]}){n[3:]}"])

    def maybe_email(self, rng: random.Random) -> str:
        return self.email if self.email and rng.random() < 0.6 else ""


def people(count: int, first: int = 1) -> list[Person]:
    return [Person(n) for n in range(first, first + count)]


def traffic(rng: random.Random, everyone: list[Person], requests: int, redelivery_rate: float = 0.12,
            first_id: int = 1) -> list[ProviderRequest]:
    """About `requests` requests: conversations of random people with random providers, some sent twice."""
    out: list[ProviderRequest] = []
    conversation = first_id
    while len(out) < requests:
        person, provider = rng.choice(everyone), rng.choice(PROVIDERS)
        conversation += 1
        for request in conversation_requests(rng, person, provider, conversation):
            out.append(request)
            if rng.random() < redelivery_rate:
                out.insert(rng.randint(max(0, len(out) - 20), len(out)), request)   # redelivered, a little later
    return out


def conversation_requests(rng: random.Random, person: Person, provider: str, n: int) -> list[ProviderRequest]:
    phone = person.phone(rng)
    if provider == "jivo":
        opened = jivo_chat(900_000 + n, name=person.name, email=person.maybe_email(rng), phone=phone)
        if rng.random() < 0.5:
            return [opened]
        messages = [("visitor", f"Question {n}", 1_700_000_000 + n), ("agent", f"Answer {n}", 1_700_000_060 + n)]
        return [opened, jivo_finished(900_000 + n, person.phone(rng), messages, name=person.name)]
    if provider == "livechat":
        return [livechat_chat(f"LC{n:08d}", customer_id=f"lc-customer-{person.number}", name=person.name,
                              email=person.maybe_email(rng), phone=phone)]
    if provider == "rocketchat":
        return [rocket_session(f"room-{n}", token=f"rc-token-{person.number}", visitor_id=f"rc-v-{person.number}",
                               name=person.name, email=person.maybe_email(rng), phone=phone)]
    return [roistat_lead(f"{700_000 + n}", visit=str(40_000 + n), name=person.name, email=person.maybe_email(rng),
                         phone=phone)]
