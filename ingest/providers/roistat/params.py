"""Reading a Roistat request: its merged parameters, its action, and one pydantic model per action.

Roistat sends everything as GET query parameters (PHP `$_GET`); a few senders POST a form instead. Values arrive
percent-encoded UTF-8 with `+` for spaces, any of them may be empty or missing, and `data` is a JSON document inside a
parameter.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.providers.base import RawRequest, json_type_name

CREDENTIAL_PARAMS = frozenset({"user", "token"})
# Numbers written by hand into a URL ("phone=+7999…") lose their leading "+" to form decoding ("+" means a space).
PHONE_PARAMS = frozenset({"phone", "caller", "callee"})
DEFAULT_PAGE_LIMIT = 1000
MAX_PAGE_LIMIT = 1000
LAST_UNIX_SECOND = 253402300799  # 9999-12-31 23:59:59 UTC, the last moment a datetime holds
MAX_SQL_INTEGER = 2**63 - 1  # what an OFFSET or LIMIT can carry on PostgreSQL and SQLite


class Action(StrEnum):
    LEAD = "lead"
    MESSAGE = "message"
    TASK = "task"
    CALL = "call"
    IMPORT_SCHEME = "import_scheme"
    EXPORT = "export"
    EXPORT_CLIENTS = "export_clients"

    @property
    def is_query(self) -> bool:
        """Roistat reading our data, not telling us about an event."""
        return self in (Action.IMPORT_SCHEME, Action.EXPORT, Action.EXPORT_CLIENTS)


class InvalidParameters(ValueError):
    """The parameters of a known action cannot be used; the message says which and why."""


def merged_params(request: RawRequest) -> dict[str, str]:
    """Query string over form body: the query wins, as in the PHP handlers Roistat documents (`$_GET + $_POST`)."""
    params = {**request.form(), **request.query()}
    for name in PHONE_PARAMS & params.keys():
        if _sent_with_bare_plus(request, name):
            params[name] = "+" + params[name].strip()
    return params


def action_of(params: dict[str, str]) -> Action | None:
    try:
        return Action(params.get("action", "").strip().lower())
    except ValueError:
        return None


def describe_action(params: dict[str, str]) -> str:
    """Why the request's action is none this version reads: the 400 reply's message and the dead event's reason."""
    known = ", ".join(action.value for action in Action)
    given = params.get("action")
    if given is None:
        return f"the request has no action parameter; Roistat sends one of {known}"
    if not given.strip():
        return f"the action parameter is empty; Roistat sends one of {known}"
    # repr quotes it and escapes what a sender may have put in it (line breaks, control characters)
    return f"action {given.strip()[:60]!r} is not one of {known}"


def _sent_with_bare_plus(request: RawRequest, name: str) -> bool:
    """True if the raw (undecoded) value starts with "+" and a digit: a country-code sign, never a leading space."""
    sources = [request.query_string]
    if "application/x-www-form-urlencoded" in request.content_type.lower():
        sources.append(request.body.decode("utf-8", errors="replace"))
    for text in sources:
        for pair in text.split("&"):
            key, _, raw = pair.partition("=")
            if unquote_plus(key) == name:
                return len(raw) > 1 and raw[0] == "+" and raw[1].isdigit()
    return False


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        """Roistat sends "" for anything it does not know; that is absence, not a value."""
        return None if isinstance(value, str) and not value.strip() else value


class LeadParams(_Params):
    id: str | None = None
    visit: str | None = None
    title: str | None = None
    text: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    data: str | None = None
    created_date: str | None = None
    manager_id: str | None = None

    @property
    def lead_id(self) -> str | None:
        return self.id.strip() if self.id else None


class MessageParams(_Params):
    lead_id: str | None = Field(default=None, validation_alias=AliasChoices("leadId", "lead_id"))
    title: str | None = None
    # Roistat's own-CRM page names the notification's text `text`; a third-party library reads `message`.
    text: str | None = None
    message: str | None = None

    @property
    def note(self) -> str | None:
        return self.text if self.text is not None else self.message


class TaskParams(_Params):
    element_id: str | None = Field(default=None, validation_alias=AliasChoices("elementId", "element_id"))
    deadline: str | None = None
    text: str | None = None


class CallParams(_Params):
    id: str | None = None
    caller: str | None = None
    callee: str | None = None
    date: str | None = None
    visit: str | None = None
    marker: str | None = None
    status: str | None = None
    order_id: str | None = Field(default=None, validation_alias=AliasChoices("order_id", "orderId"))
    duration: str | None = None
    file_url: str | None = Field(default=None, validation_alias=AliasChoices("file_url", "fileUrl"))


class PageParams(_Params):
    """`export` / `export_clients`: `date` (unix seconds, "changed since"), `offset`, and `limit` after the first page."""

    date: int | None = Field(default=None, ge=0, le=LAST_UNIX_SECOND)
    offset: int | None = Field(default=None, ge=0, le=MAX_SQL_INTEGER)
    limit: int | None = Field(default=None, ge=1, le=MAX_SQL_INTEGER)

    @property
    def changed_since(self) -> datetime | None:
        return datetime.fromtimestamp(self.date, timezone.utc) if self.date else None

    @property
    def start(self) -> int:
        return self.offset or 0

    @property
    def page_limit(self) -> int:
        """Roistat sends no limit on the first call and then uses the one we answered."""
        return min(self.limit or DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)


def page_params(params: dict[str, str]) -> PageParams:
    try:
        return PageParams.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidParameters(f"invalid paging parameters ({problems})") from None


def decode_data(text: str | None) -> tuple[dict[str, Any], str | None]:
    """The `data` parameter as an object, and a problem description if it was not one (the text is then kept)."""
    if text is None:
        return {}, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"data is not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return {}, "data nests deeper than this service reads"
    except ValueError as exc:  # an integer of more digits than Python converts
        return {}, f"data cannot be read: {exc}"
    if value in (None, [], {}, ""):  # PHP's json_encode([]) is "[]": an empty data set
        return {}, None
    if isinstance(value, dict):
        return value, None
    return {}, f"data is JSON but not an object (got {json_type_name(value)})"


def utc_time(text: str | None) -> datetime | None:
    """Roistat's dates ("2015-06-28 09:12:54", ISO with "T", or unix seconds) are UTC+0 unless they say otherwise."""
    if text is None:
        return None
    text = text.strip()
    try:
        moment = datetime.fromtimestamp(int(text), timezone.utc) if text.isdigit() else datetime.fromisoformat(text)
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):  # unreadable, or beyond year 1-9999 in UTC
        return None
