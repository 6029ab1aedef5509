"""Rocket.Chat Omnichannel: the Livechat "CRM integration" webhook (Administration > Omnichannel > Webhooks).

Rocket.Chat POSTs JSON with `X-RocketChat-Livechat-Token: <Secret Token>` (sent only when a Secret Token is set, so a
source without `token` is a configuration error: we never accept unauthenticated chats). It wants exactly 200; it
stores our reply body as the room's `crmData` and echoes it in every later webhook of the room. It retries on
timeouts and errors with the very same body and carries no delivery id, and it sends events out of order: the dedup
key is built from what identifies each logical event, never from its position in the stream.
The body's shape lives in `payload`, the mapping to canonical records in `records`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, Field, SecretStr, TypeAdapter, ValidationError, field_validator

from crm_sync.model import CanonicalRecord
from ingest.providers.base import (
    AuthenticationFailed,
    IgnoreEvent,
    ParseError,
    Provider,
    RawRequest,
    Reply,
    json_type_name,
    secrets_equal,
    stable_hash,
)
from ingest.providers.rocketchat.payload import Emails, OfflineMessage, Phones, RoomEvent
from ingest.providers.rocketchat.records import (
    OFFLINE_MESSAGE,
    ROOM_EVENTS,
    conversation_id,
    offline_record,
    room_record,
)
from ingest.settings import SourceSettings

if TYPE_CHECKING:
    from ingest.replies import ReplyContext

TOKEN_HEADER = "X-RocketChat-Livechat-Token"
MIN_TOKEN_LENGTH = 16
# The fixed room id of the sample that "Send Test" (POST /api/v1/livechat/webhook.test) posts; its visitor _id is "".
SEND_TEST_ROOM_ID = "fasd6f5a4sd6f8a4sdf"


class RocketChatSettings(SourceSettings):
    # Validated even when absent, so a missing token gets the same explanation as a short one.
    token: SecretStr | None = Field(None, validate_default=True)

    @field_validator("token")
    @classmethod
    def _token_is_a_real_secret(cls, value: SecretStr | None) -> SecretStr:
        if value is None or len(value.get_secret_value().strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"a rocketchat source needs token = \"…\" of at least {MIN_TOKEN_LENGTH} characters, the Secret Token "
                "set in Rocket.Chat (Administration > Omnichannel > Webhooks): without it anyone could post chats")
        return value


class RocketChatProvider(Provider):
    name = "rocketchat"
    settings_model = RocketChatSettings
    secret_headers = frozenset({TOKEN_HEADER.lower()})

    def authenticate(self, request: RawRequest, source: RocketChatSettings) -> None:
        if not secrets_equal(request.header(TOKEN_HEADER), source.token.get_secret_value()):
            raise AuthenticationFailed(f"missing or wrong {TOKEN_HEADER} header")

    def dedup_key(self, request: RawRequest) -> str:
        try:
            body = request.json_object()
        except ParseError:
            return super().dedup_key(request)
        return logical_key(body) or f"sha256:{stable_hash(_without_echo(body))}"

    def reply(self, context: ReplyContext) -> Reply:
        """The same bytes for every delivery of a room, so the `crmData` Rocket.Chat stores never changes.

        Current servers store the whole body text as `crmData`; servers before the 2023 rewrite stored the `data` key
        of a JSON reply. Either way `crmData` then names our conversation, which whoever reads the room in
        Rocket.Chat can look up in our API.
        """
        try:
            room_id = _room_id(context.request.json_object())
        except ParseError:
            room_id = None
        if room_id is None:
            return Reply(200, {"ok": True})
        return Reply(200, {"ok": True, "data": {"conversation_id": conversation_id(room_id)}})

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        body = request.json_object()
        kind = _type_of(body)
        if kind == OFFLINE_MESSAGE:
            return [offline_record(_validated(OfflineMessage, body), offline_key(body))]
        if kind not in ROOM_EVENTS:
            raise ParseError(_unknown_type(body))
        event = _validated(RoomEvent, body)
        if not event.id:
            raise ParseError(f"Rocket.Chat {kind} without a room _id: cannot tell which conversation it belongs to")
        record = room_record(event)
        if event.id == SEND_TEST_ROOM_ID and not event.visitor.id:
            # A fake visitor ("visitor name") that must not become a contact in anybody's CRM.
            raise IgnoreEvent(f"Rocket.Chat \"Send Test\" sample, read as {_what_was_read(record)}: acknowledged "
                              "with 200, recorded nowhere")
        return [record]

    @classmethod
    def starter_source(cls, token: str) -> dict[str, str]:
        return {"provider": cls.name, "token": token}

    @classmethod
    def setup_instructions(cls, url: str, source: RocketChatSettings) -> str:
        return (f"in Rocket.Chat, Administration > Omnichannel > Webhooks: Webhook URL = {url}, "
                f"Secret Token = {source.token.get_secret_value()}, Send Request on: Chat Start, Chat Close, "
                "Chat Taken, Chat Queued, Forwarding, Offline Messages, Visitor Messages, Agent Messages; Save, then "
                "Send Test (lead capture: Administration > Workspace > Settings > Omnichannel > CRM Integration)")


def _unknown_type(body: dict[str, Any]) -> str:
    """Why the body's `type` names no webhook this version reads, with the ones it does."""
    known = ", ".join([*ROOM_EVENTS, OFFLINE_MESSAGE])
    if "type" not in body:
        return f"the body has no `type` field: not a Rocket.Chat webhook; known types: {known}"
    kind = body["type"]
    if not isinstance(kind, str):
        return f"the body's `type` is {json_type_name(kind)}, not text; known types: {known}"
    # repr quotes it and escapes what a sender may have put in it (line breaks, control characters)
    return f"unknown Rocket.Chat webhook type {kind[:60]!r}; known types: {known}"


def _what_was_read(record: CanonicalRecord) -> str:
    """The sample's visitor and messages as read: shows that a real webhook would be understood."""
    person = record.person
    visitor = ", ".join([*filter(None, [person.name]), *person.emails, *person.phones]) or "no name, e-mail or phone"
    return f"{visitor} with {len(record.interaction.transcript)} messages"


# --- dedup keys ----------------------------------------------------------------------------------------------------

def logical_key(body: dict[str, Any]) -> str | None:
    """What identifies one logical event of each type; None when the body does not say (then: the body's hash).

    Retries resend the very same body, so every part below repeats on a redelivery; `crmData` is left out because it
    is the only part that may differ between two webhooks describing the same thing.
    """
    kind = _type_of(body)
    if kind == OFFLINE_MESSAGE:
        return f"{OFFLINE_MESSAGE}:{offline_key(body)}"
    if kind == "LeadCapture":
        return f"LeadCapture:{_lead_key(body)}"
    room_id = _room_id(body)
    parts = _KEY_PARTS.get(kind) if room_id else None
    return f"{kind}:{room_id}:{stable_hash(*parts(body))}" if parts else None


def offline_key(body: dict[str, Any]) -> str:
    visitor = _object(body.get("visitor"))
    return stable_hash(visitor.get("name"), visitor.get("email"), body.get("message"), body.get("sentAt"))


def _messages_key(body: dict[str, Any]) -> list[Any]:
    """Each message by id and edit time (an edit of a message is news); one without an id by its time and text."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    return [(m.get("_id"), m.get("editedAt")) if m.get("_id") else (m.get("ts"), m.get("msg"))
            for m in messages if isinstance(m, dict)]


def _user(body: dict[str, Any], key: str) -> tuple[Any, Any]:
    """Who and since when: the same agent taking the room again after it went back to the queue is a new event."""
    user = _object(body.get(key))
    return user.get("_id"), user.get("ts")


def _session_parts(body: dict[str, Any]) -> tuple:
    if body.get("closedAt"):
        return (body["closedAt"],)
    return body.get("createdAt"), body.get("lastMessageAt"), _messages_key(body)


def _edit_parts(body: dict[str, Any]) -> tuple:
    """The editable content: saving it unchanged is the same event, a real edit is a new one."""
    visitor = _object(body.get("visitor"))
    return (body.get("label"), body.get("topic"), body.get("tags"), body.get("customFields"), visitor.get("name"),
            _contacts(_EMAILS, visitor.get("email")), _contacts(_PHONES, visitor.get("phone")),
            visitor.get("customFields"))


def _lead_key(body: dict[str, Any]) -> str:
    visitor = _object(body.get("visitor"))
    who = visitor.get("_id") or visitor.get("token") or _room_id(body)
    return f"{who}:{stable_hash(_contacts(_EMAILS, visitor.get('email')), _contacts(_PHONES, visitor.get('phone')))}"


_EMAILS: TypeAdapter[list[str]] = TypeAdapter(Emails)
_PHONES: TypeAdapter[list[str]] = TypeAdapter(Phones)

_KEY_PARTS: dict[str, Callable[[dict[str, Any]], tuple]] = {
    "LivechatSessionStart": lambda body: (body.get("departmentId"), _messages_key(body)),
    "LivechatSessionQueued": lambda body: (body.get("departmentId"), _messages_key(body)),
    "LivechatSessionTaken": lambda body: (_user(body, "servedBy"),),
    "LivechatSessionForwarded": lambda body: (_user(body, "servedBy"), _user(body, "oldServedBy"),
                                              body.get("oldDepartmentId"), body.get("departmentId")),
    "LivechatSession": _session_parts,
    "LivechatEdit": _edit_parts,
    "Message": lambda body: (_messages_key(body),),
}


# --- helpers -------------------------------------------------------------------------------------------------------

def _contacts(reader: TypeAdapter[list[str]], value: Any) -> list[str]:
    """Scalar or array, the same addresses give the same key."""
    try:
        return sorted(reader.validate_python(value))
    except ValidationError:
        return []


def _type_of(body: dict[str, Any]) -> str | None:
    kind = body.get("type")
    return kind if isinstance(kind, str) else None


def _room_id(body: dict[str, Any]) -> str | None:
    room_id = body.get("_id")
    if body.get("type") == OFFLINE_MESSAGE or not isinstance(room_id, str) or not room_id.strip():
        return None
    return room_id


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _without_echo(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "crmData"}


def _validated(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors())
        raise ParseError(f"Rocket.Chat {body.get('type')}: {problems}") from None
