"""The Roistat provider: authentication, dedup keys, replies and parsing, dispatched by `action`."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Callable

from pydantic import Field, SecretStr, field_validator
from sqlalchemy.exc import SQLAlchemyError

from crm_sync.model import CanonicalRecord
from ingest.providers.base import (
    AuthenticationFailed,
    IgnoreEvent,
    ParseError,
    Provider,
    RawRequest,
    Reply,
    secrets_equal,
    stable_hash,
)
from ingest.providers.roistat import exports, records
from ingest.providers.roistat.params import (
    CREDENTIAL_PARAMS,
    Action,
    CallParams,
    InvalidParameters,
    LeadParams,
    MessageParams,
    TaskParams,
    action_of,
    describe_action,
    merged_params,
    page_params,
)
from ingest.settings import SourceSettings

if TYPE_CHECKING:
    from ingest.replies import ReplyContext

Params = dict[str, str]


class RoistatSettings(SourceSettings):
    user: str = Field(description="the login set in Roistat's own-CRM integration (token = md5(user + password))")
    password: SecretStr = Field(description="the one set in Roistat's own-CRM integration "
                                            "(token = md5(user + password))")

    @field_validator("user")
    @classmethod
    def _user_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("user must be the login entered in Roistat's own-CRM integration settings")
        return value

    @field_validator("password")
    @classmethod
    def _password_given(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("password must be the one entered in Roistat's own-CRM integration settings")
        return value

    @property
    def token(self) -> str:
        """What Roistat sends as `token`: md5(user + password), a fixed digest, not a security hash."""
        text = self.user + self.password.get_secret_value()
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _lead_key(params: Params) -> str | None:
    lead_id = LeadParams.model_validate(params).lead_id
    return f"lead:{lead_id}" if lead_id else None


def _message_key(params: Params) -> str:
    message = MessageParams.model_validate(params)
    return f"message:{message.lead_id or ''}:{stable_hash(message.title, message.note)}"


def _task_key(params: Params) -> str:
    task = TaskParams.model_validate(params)
    return f"task:{task.element_id or ''}:{stable_hash(task.deadline, task.text)}"


def _call_key(params: Params) -> str | None:
    call_id = CallParams.model_validate(params).id
    return f"call:{call_id.strip()}" if call_id else None


def _query_key(action: Action, params: Params) -> str:
    """Identical polls collapse into one stored event with a duplicate count."""
    asked = {key: value for key, value in params.items() if key not in CREDENTIAL_PARAMS}
    return f"{action.value}:{stable_hash(asked)}"


EVENT_KEYS: dict[Action, Callable[[Params], str | None]] = {
    Action.LEAD: _lead_key, Action.MESSAGE: _message_key, Action.TASK: _task_key, Action.CALL: _call_key,
}
EVENT_RECORDS: dict[Action, Callable[[Params], CanonicalRecord]] = {
    Action.MESSAGE: records.message_record, Action.TASK: records.task_record, Action.CALL: records.call_record,
}
QUERY_ANSWERS = {Action.EXPORT: exports.export_orders, Action.EXPORT_CLIENTS: exports.export_clients}
# The id Roistat expects back: our first stored event of what it sent, so every redelivery is answered the same.
ANSWERED_IDS = {Action.LEAD: "order_id", Action.TASK: "task_id", Action.CALL: "call_id"}


class RoistatProvider(Provider):
    """Roistat's "own CRM" integration (Своя CRM): one handler URL for deals, notes and Roistat's export polls."""

    name = "roistat"
    settings_model = RoistatSettings
    methods = frozenset({"GET", "POST"})

    def authenticate(self, request: RawRequest, source: RoistatSettings) -> None:
        """The token proves the login and the password; `user` may be empty, as in Roistat's own example request
        (`?user=&token=…`), but a login that is given must be this source's."""
        params = _credential_params(request)
        user = params.get("user", "").strip()
        user_matches = not user or secrets_equal(user, source.user)
        token_matches = secrets_equal(params.get("token", "").strip().lower(), source.token)
        if not (user_matches and token_matches):
            raise AuthenticationFailed("user or token does not match this source (token = md5(user + password))")

    def credentials_in(self, request: RawRequest) -> list[str]:
        token = merged_params(request).get("token", "")
        return [token] if token else []

    def dedup_key(self, request: RawRequest) -> str:
        params = merged_params(request)
        action = action_of(params)
        if action is None:
            return super().dedup_key(request)
        key = _query_key(action, params) if action.is_query else EVENT_KEYS[action](params)
        return key or super().dedup_key(request)

    def reply(self, context: "ReplyContext") -> Reply:
        params = merged_params(context.request)
        action = action_of(params)
        if action is None:
            return _error(400, "unknown_action", f"{describe_action(params)}; the request is stored and can be "
                                                 "replayed once this version understands it")
        if action.is_query:
            return _answer_query(action, params, context)
        answer = {"status": "ok"}
        if action in ANSWERED_IDS:
            answer[ANSWERED_IDS[action]] = str(context.event.id)
        return Reply(200, answer)

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        return self.parse_stored(request, None)

    def parse_stored(self, request: RawRequest, event_id: int | None) -> list[CanonicalRecord]:
        """A lead's event id is the order_id Roistat was answered with, which its notes, tasks and calls name: the
        lead's person claims that order, so that they find the lead's contact."""
        params = merged_params(request)
        action = action_of(params)
        if action is None:
            raise ParseError(describe_action(params))
        if action.is_query:
            if action is not Action.IMPORT_SCHEME:
                _checked_page(params)
            raise IgnoreEvent(f"read-only query ({action.value}): answered when it arrived, nothing to record")
        if action is Action.LEAD:
            return [records.lead_record(params, None if event_id is None else str(event_id))]
        return [EVENT_RECORDS[action](params)]

    @classmethod
    def starter_source(cls, token: str) -> dict[str, str]:
        return {"provider": cls.name, "user": "roistat", "password": token}

    @classmethod
    def setup_instructions(cls, url: str, source: RoistatSettings) -> str:
        return (f"in Roistat, Integrations → Своя CRM (own CRM): login {source.user!r}, password "
                f"{source.password.get_secret_value()!r}; paste {url} into both «Адрес обработчика заявок» "
                "(deals handler address) and «Адрес для получения доп. информации по сделке»")


def _answer_query(action: Action, params: Params, context: "ReplyContext") -> Reply:
    if action is Action.IMPORT_SCHEME:
        return Reply(200, exports.scheme())
    try:
        page = page_params(params)
    except InvalidParameters as exc:
        return _error(400, "invalid_parameters", str(exc))
    try:
        with context.sessions() as session:
            return Reply(200, QUERY_ANSWERS[action](session, context.source.name, page))
    except SQLAlchemyError:
        # A poll, not an event: Roistat asks again later, so a retryable error beats a half answer.
        return _error(503, "store_unavailable", f"{action.value} could not be read from the store; retry later")


def _checked_page(params: Params) -> None:
    try:
        page_params(params)
    except InvalidParameters as exc:
        raise ParseError(str(exc)) from None


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error": code, "message": message})


# Roistat's requests carry a few dozen parameters; a form body of more fields than this is refused before it is read.
MAX_FORM_FIELDS = 1000


def _credential_params(request: RawRequest) -> dict[str, str]:
    """The parameters that carry `user` and `token`, reading no more than it must before the request has proven
    anything: the query alone when it holds both (it wins over the form anyway), else the form too, unless the body
    has more fields than any Roistat request (parsing a megabyte of them costs a web worker a third of a second)."""
    query = request.query()
    if "user" in query and "token" in query:
        return query
    if request.body.count(b"&") >= MAX_FORM_FIELDS:
        raise AuthenticationFailed(f"the body has more than {MAX_FORM_FIELDS} form fields, more than any Roistat "
                                   "request")
    return merged_params(request)
