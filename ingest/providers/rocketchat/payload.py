"""The Rocket.Chat Omnichannel webhook body, read tolerantly.

The shapes follow the server's own code (`sendToCRM.ts`, `getLivechatRoomGuestInfo` in `guests.ts`,
`offlineMessage.ts`, the `livechat/webhook.test` endpoint). What varies between versions and senders is absorbed
here, so the mapping to the canonical model can trust its input:
- `visitor.email` is `[{"address": …}]` on current servers, a plain string in the test sample and old servers,
  `null` in the docs' sample; `visitor.phone` likewise with `phoneNumber`.
- "" means "not given"; keys may be missing altogether.
- Dates are JSON-serialised JS Dates (ISO 8601); EJSON `{"$date": …}` and epoch milliseconds are read too.
- `crmData` (our own earlier reply, echoed back) and any key we do not use are ignored.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Callable

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ingest.providers.base import json_type_name


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected text, got {json_type_name(value)}")


def _timestamp(value: Any) -> datetime | None:
    """A date the sender wrote in any of its serialisations; an unreadable one is absent, not fatal."""
    if isinstance(value, dict):
        value = value.get("$date")
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip())
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _contact_list(key: str) -> Callable[[Any], list[str]]:
    """`[{key: "…"}]`, `["…"]`, a bare string or number, or nothing: always a list of the non-blank values."""

    def read(value: Any) -> list[str]:
        items = value if isinstance(value, list) else [value]
        out: list[str] = []
        for item in items:
            if isinstance(item, dict):
                item = item.get(key)
            text = _text(item) if not isinstance(item, (dict, list, bool)) else None
            if text and text.strip() not in out:
                out.append(text.strip())
        return out

    return read


def _string_list(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [text for text in (_text(item) for item in items if not isinstance(item, (dict, list))) if text]


def _mapping(value: Any) -> dict[str, Any]:
    if value is None or value == [] or value == "":
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {json_type_name(value)}")
    return value


def _list_of_objects(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"expected an array, got {json_type_name(value)}")
    return value


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


Text = Annotated[str | None, BeforeValidator(_text)]
Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
Emails = Annotated[list[str], BeforeValidator(_contact_list("address"))]
Phones = Annotated[list[str], BeforeValidator(_contact_list("phoneNumber"))]
Strings = Annotated[list[str], BeforeValidator(_string_list)]
Mapping = Annotated[dict[str, Any], BeforeValidator(_mapping)]
Objects = Annotated[list[dict[str, Any]], BeforeValidator(_list_of_objects)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class RocketUser(_Payload):
    """`agent`, `servedBy`, `oldServedBy`, `closedBy`, a message's `u`: whichever of these keys each one has."""

    id: Text = Field(None, alias="_id")
    username: Text = None
    name: Text = None
    email: Text = None
    ts: Timestamp = None


class Visitor(_Payload):
    id: Text = Field(None, alias="_id")
    token: Text = None
    name: Text = None
    username: Text = None
    department: Text = None
    ip: Text = None
    os: Text = None
    browser: Text = None
    custom_fields: Mapping = Field(default_factory=dict, alias="customFields")
    email: Emails = Field(default_factory=list)
    phone: Phones = Field(default_factory=list)


class ChatMessage(_Payload):
    id: Text = Field(None, alias="_id")
    username: Text = None
    msg: Text = None
    blocks: Objects = Field(default_factory=list)
    ts: Timestamp = None
    edited_at: Timestamp = Field(None, alias="editedAt")
    agent_id: Text = Field(None, alias="agentId")
    navigation: Mapping = Field(default_factory=dict)
    closing_message: Annotated[bool, BeforeValidator(bool)] = Field(False, alias="closingMessage")
    file: Mapping = Field(default_factory=dict)
    attachments: Objects = Field(default_factory=list)
    file_upload: Mapping = Field(default_factory=dict, alias="fileUpload")
    u: Annotated[RocketUser, BeforeValidator(_or_empty)] = Field(default_factory=RocketUser)


class RoomEvent(_Payload):
    """Every type but the offline message: the room as `getLivechatRoomGuestInfo` describes it, plus extras."""

    type: str
    id: Text = Field(None, alias="_id")
    label: Text = None
    topic: Text = None
    created_at: Timestamp = Field(None, alias="createdAt")
    last_message_at: Timestamp = Field(None, alias="lastMessageAt")
    tags: Strings = Field(default_factory=list)
    custom_fields: Mapping = Field(default_factory=dict, alias="customFields")
    visitor: Annotated[Visitor, BeforeValidator(_or_empty)] = Field(default_factory=Visitor)
    agent: RocketUser | None = None
    messages: Annotated[list[ChatMessage], BeforeValidator(_list_of_objects)] = Field(default_factory=list)
    department_id: Text = Field(None, alias="departmentId")
    served_by: RocketUser | None = Field(None, alias="servedBy")
    old_served_by: RocketUser | None = Field(None, alias="oldServedBy")
    old_department_id: Text = Field(None, alias="oldDepartmentId")
    closed_at: Timestamp = Field(None, alias="closedAt")
    closed_by: RocketUser | None = Field(None, alias="closedBy")
    closer: Text = None


class OfflineVisitor(_Payload):
    name: Text = None
    email: Emails = Field(default_factory=list)
    phone: Phones = Field(default_factory=list)


class OfflineMessage(_Payload):
    """`LivechatOfflineMessage`: its own small shape, with no room and no visitor id."""

    type: str
    sent_at: Timestamp = Field(None, alias="sentAt")
    visitor: Annotated[OfflineVisitor, BeforeValidator(_or_empty)] = Field(default_factory=OfflineVisitor)
    message: Text = None
    department: Text = None
    host: Text = None
