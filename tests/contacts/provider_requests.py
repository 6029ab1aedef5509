"""Real provider requests about one person: the shared samples with the visitor's details and ids swapped in.

Each builder returns a `Delivery` that goes through /hooks exactly as the provider sends it (its credentials, its
content type), so the contact tests exercise the real provider modules end to end.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from flask.testing import FlaskClient

from tests.conftest import payload

JIVO_SECRET = "jivo-url-secret-for-contact-tests-0123"
LIVECHAT_SECRET = "livechat-secret-for-contact-tests-0123"
ROCKET_TOKEN = "rocket-token-for-contact-tests-0123"
ROISTAT_USER, ROISTAT_PASSWORD = "roistat", "roistat-password-for-contact-tests"
PROVIDER_SOURCES = {
    "jivo-main": {"provider": "jivo", "url_secret": JIVO_SECRET},
    "livechat-main": {"provider": "livechat", "secret_key": LIVECHAT_SECRET},
    "rocket-main": {"provider": "rocketchat", "token": ROCKET_TOKEN},
    "roistat-main": {"provider": "roistat", "user": ROISTAT_USER, "password": ROISTAT_PASSWORD},
}
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Delivery:
    method: str
    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: FlaskClient):
        response = client.open(self.url, method=self.method, data=self.body, headers=self.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response


def jivo_chat(chat_id: int, *, name: str = "", email: str = "", phone: str = "", number: str = "",
              event_name: str = "chat_accepted") -> Delivery:
    body = json.loads(payload("jivo/chat_accepted.json"))
    body.update(event_name=event_name, chat_id=chat_id)
    body["visitor"].update(name=name, email=email, phone=phone, number=number)
    return Delivery("POST", f"/hooks/jivo-main/{JIVO_SECRET}", _json(body), JSON)


def livechat_chat(chat_id: str, *, customer_id: str, name: str = "", email: str = "", phone: str = "") -> Delivery:
    body = json.loads(payload("livechat/incoming_chat.json"))
    body["secret_key"] = LIVECHAT_SECRET
    body["webhook_id"] = f"webhook-{chat_id}"
    chat = body["payload"]["chat"]
    chat["id"] = chat_id
    customer = chat["users"][0]
    for noise in ("omnichannel", "address", "session_fields"):
        customer.pop(noise, None)
    customer.update(id=customer_id, name=name, email=email, phone_number=phone)
    chat["thread"].update(id=f"T-{chat_id}", events=[], user_ids=[customer_id, chat["users"][1]["id"]])
    return Delivery("POST", "/hooks/livechat-main", _json(body), JSON)


def rocket_session(room_id: str, *, token: str, visitor_id: str, name: str = "", email: str = "",
                   phone: str = "") -> Delivery:
    body = json.loads(payload("rocketchat/LivechatSessionStart.json"))
    body["_id"] = room_id
    body["visitor"].update(_id=visitor_id, token=token, name=name,
                           email=[{"address": email}] if email else [], phone=[{"phoneNumber": phone}] if phone else [])
    for message in body.get("messages", []):
        message["rid"] = room_id
        message["_id"] = f"{room_id}-{message['_id']}"
    return Delivery("POST", "/hooks/rocket-main", _json(body),
                    {**JSON, "X-RocketChat-Livechat-Token": ROCKET_TOKEN})


def roistat_lead(lead_id: str, *, visit: str = "", name: str = "", email: str = "", phone: str = "",
                 title: str = "Callback request") -> Delivery:
    token = hashlib.md5((ROISTAT_USER + ROISTAT_PASSWORD).encode()).hexdigest()
    query = urlencode({"user": ROISTAT_USER, "token": token, "action": "lead", "id": lead_id, "visit": visit,
                       "title": title, "text": "", "name": name, "phone": phone, "email": email, "data": "{}",
                       "created_date": "2026-03-01 10:00:00"})
    return Delivery("GET", f"/hooks/roistat-main?{query}")


def _json(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()
