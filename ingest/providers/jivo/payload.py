"""Jivo's webhook bodies as lenient pydantic models: every type drift Jivo is known for is absorbed here.

Jivo writes ids as strings in one event and numbers in the next, sends `null`, `{}`, `[]` or nothing for "no
value", and its CRM module nests the client object in some events and not in others. The models coerce ids to
text, treat any unusable sub-object as empty, and ignore keys they do not know, so that the mapping code only ever
sees one shape.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ingest.providers.base import ParseError, RawRequest


def _id_text(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def plain_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(float(value)) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    return {"true": True, "1": True, "false": False, "0": False}.get(str(value).strip().lower())


def _object_map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list_of_objects(value: Any) -> list[Any]:
    """A JSON array, or an object used as one (PHP-style `{"0": {...}, "1": {...}}`); anything else is empty."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, (dict, str))]


Id = Annotated[str | None, BeforeValidator(_id_text)]
Text = Annotated[str | None, BeforeValidator(plain_text)]
Count = Annotated[int | None, BeforeValidator(_count)]
Flag = Annotated[bool | None, BeforeValidator(_flag)]
ObjectMap = Annotated[dict[str, Any], BeforeValidator(_object_map)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    # A model that Jivo sometimes writes as a bare string (a tag as "VIP") names the field that string fills.
    _text_field: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _anything_else_is_empty(cls, data: Any) -> Any:
        """`[]` (PHP's empty object), `""` or a stray scalar where an object belongs reads as an empty object."""
        if isinstance(data, dict):
            return data
        if isinstance(data, str) and data.strip() and cls._text_field:
            return {cls._text_field: data}
        return {}


def _objects(model: type[_Lenient]) -> Any:
    return Annotated[list[model], BeforeValidator(_list_of_objects)]


class Visitor(_Lenient):
    name: Text = None
    email: Text = None
    phone: Text = None
    description: Text = None
    number: Id = None
    chats_count: Count = None
    social: ObjectMap = Field(default_factory=dict)


class Agent(_Lenient):
    id: Id = Field(default=None, validation_alias=AliasChoices("id", "agent_id", "assigned_agent_id"))
    name: Text = None
    email: Text = None
    phone: Text = None


class Named(_Lenient):
    """organization, department: `{id, name}` in chat events, `{organization_id, name}` in CRM events."""

    id: Id = Field(default=None, validation_alias=AliasChoices("id", "organization_id"))
    name: Text = None


class ClientStatus(_Lenient):
    id: Id = Field(default=None, validation_alias=AliasChoices("id", "status_id"))
    title: Text = None


class Tag(_Lenient):
    _text_field = "title"

    id: Id = Field(default=None, validation_alias=AliasChoices("id", "tag_id"))
    title: Text = Field(default=None, validation_alias=AliasChoices("title", "name"))


class Topic(_Lenient):
    id: Id = Field(default=None, validation_alias=AliasChoices("topic_id", "id"))
    title: Text = None


class GeoIp(_Lenient):
    country: Text = None
    country_code: Text = None
    region: Text = None
    region_code: Text = None
    city: Text = None
    latitude: Text = None
    longitude: Text = None
    organization: Text = None


class Session(_Lenient):
    geoip: GeoIp | None = None
    utm: Text = None
    utm_json: ObjectMap = Field(default_factory=dict)
    ip_addr: Text = None
    user_agent: Text = None


class Page(_Lenient):
    url: Text = None
    title: Text = None


class ChatMessage(_Lenient):
    message: Text = None
    timestamp: Count = None
    type: Text = None
    agent_id: Id = None


class Chat(_Lenient):
    messages: _objects(ChatMessage) = Field(default_factory=list)
    blacklisted: Flag = None
    rate: Text = None
    invitation: Text = None


class Call(_Lenient):
    type: Text = None
    phone: Text = None
    status: Text = None
    reason: Text = None
    record_url: Text = None


class CrmContact(_Lenient):
    contact_type: Text = None
    contact: Text = None
    channel_type: Text = None


class CrmWidget(_Lenient):
    widget_id: Id = None


class CrmClient(_Lenient):
    """A client card of Jivo's CRM module: at the top level of client events, under `client` in others."""

    client_id: Id = None
    widget: CrmWidget | None = None
    name: Text = None
    description: Text = None
    contacts: _objects(CrmContact) = Field(default_factory=list)
    assigned_agent: Agent | None = None
    crm_link: Text = None
    status: ClientStatus | None = None
    organization: Named | None = None
    tags: _objects(Tag) = Field(default_factory=list)
    blacklist: ObjectMap = Field(default_factory=dict)

    @property
    def describes_a_person(self) -> bool:
        return bool(self.name or any(contact.contact for contact in self.contacts))


class JivoEvent(CrmClient):
    """Every field any Jivo event carries; each event uses its own subset. CRM client events spread the client
    card over the body itself, which is why a JivoEvent is also a CrmClient."""

    event_name: str
    event_type: Text = None
    widget_id: Id = None
    chat_id: Id = None
    user_token: Text = None
    visitor: Visitor | None = None
    agent: Agent | None = None
    agents: _objects(Agent) = Field(default_factory=list)
    topic: Topic | None = None
    department: Named | None = None
    session: Session | None = None
    page: Page | None = None
    chat: Chat | None = None
    plain_messages: Text = None
    call: Call | None = None
    message: Text = None
    offline_message_id: Id = None
    attributes: ObjectMap = Field(default_factory=dict)
    assign_to: Text = None
    client: CrmClient | None = None

    @property
    def crm_client(self) -> CrmClient:
        """The CRM client card: nested under `client` (status, deal and task events) or the body itself."""
        return self.client if self.client is not None else self


def read_event(request: RawRequest) -> JivoEvent:
    """The request body as a JivoEvent, validated once per request; ParseError (with the reason) for anything that
    is not one."""
    return request.derived(_event_of)


def _event_of(request: RawRequest) -> JivoEvent:
    return event_from_body(request.json_object())


def event_from_body(body: dict[str, Any]) -> JivoEvent:
    name = body.get("event_name")
    if not isinstance(name, str) or not name.strip():
        raise ParseError("the body has no event_name: it is not a Jivo webhook")
    # The CRM docs spell one event "completed task"; names are compared in one normal form.
    normal_name = "_".join(name.strip().lower().split())
    try:
        return JivoEvent.model_validate({**body, "event_name": normal_name})
    except ValidationError as exc:
        raise ParseError(f"the body is not a readable Jivo event: {exc}") from None
