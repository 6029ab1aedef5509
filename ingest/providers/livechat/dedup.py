"""Which logical event a LiveChat webhook describes, so that retries are recognised and new events are not.

LiveChat sends no delivery id. A v3 webhook not answered with 200 within ~10 s is resent up to 3 times within a
minute; a legacy one up to 10 times within 6 hours. A retry repeats the body, so each key below is built from the ids
that name the event. `webhook_id` and `secret_key` are left out: an app may register up to three webhooks for one
action (different filters or URLs pointing here), and each delivers the very same event.
"""
from __future__ import annotations

from typing import Any, Callable

from ingest.providers.base import stable_hash
from ingest.providers.livechat.models import as_text


def v3_key(body: dict[str, Any]) -> str:
    action = as_text(body.get("action")) or "-"
    account = as_text(body.get("organization_id")) or as_text(body.get("license_id")) or "-"
    payload = body.get("payload")
    parts = _V3_PARTS.get(action, _whole)(payload if isinstance(payload, dict) else {})
    if any(part is None for part in parts):
        parts = _whole(payload)  # an id is missing: only the whole payload can tell this event from another
    return ":".join(["v3", action, account, *parts])


def legacy_key(body: dict[str, Any]) -> str:
    """Legacy bodies name the chat, ticket or visitor but not the change, so the content tells changes apart
    (a chat_changed with new tags is a new event). `token` is an API credential, not part of the event."""
    event_type = as_text(body.get("event_type")) or "-"
    subject = _at(body, "chat", "id") or _at(body, "ticket", "id") or _at(body, "visitor", "id") or "-"
    content = {key: value for key, value in body.items() if key != "token"}
    return ":".join(["v2", event_type, as_text(body.get("license_id")) or "-", subject, stable_hash(content)])


def _incoming_chat(payload: dict) -> list[str | None]:
    # One incoming_chat per thread: a customer's next session in the same chat is a new thread, a new event.
    return [_at(payload, "chat", "id"), _at(payload, "chat", "thread", "id")]


def _chat_event(payload: dict) -> list[str | None]:
    return [_at(payload, "chat_id"), _at(payload, "thread_id"), _at(payload, "event", "id")]


def _thread(payload: dict) -> list[str | None]:
    return [_at(payload, "chat_id"), _at(payload, "thread_id")]


def _transfer(payload: dict) -> list[str | None]:
    """Transfers carry no id; who asked, why and to whom tells one from the next within a thread."""
    details = {key: payload.get(key) for key in ("requester_id", "reason", "transferred_to", "queue")}
    return [_at(payload, "chat_id"), _at(payload, "thread_id") or "-", stable_hash(details)]


def _tag(payload: dict) -> list[str | None]:
    return [_at(payload, "chat_id"), _at(payload, "thread_id") or "-", _at(payload, "tag")]


def _session_fields(payload: dict) -> list[str | None]:
    # LiveChat sends one copy per active chat of the customer: the chat is left out, so N copies are one event.
    return [_at(payload, "id"), stable_hash(payload.get("session_fields"))]


def _whole(payload: Any) -> list[str | None]:
    return [stable_hash(payload)]


_V3_PARTS: dict[str, Callable[[dict], list[str | None]]] = {
    "incoming_chat": _incoming_chat,
    "incoming_event": _chat_event,
    "chat_deactivated": _thread,
    "chat_transferred": _transfer,
    "thread_tagged": _tag,
    "thread_untagged": _tag,
    "customer_session_fields_updated": _session_fields,
}


def _at(data: Any, *path: str) -> str | None:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return as_text(data)
