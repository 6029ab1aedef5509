"""What a provider module is: the small interface every provider implements, and its error classes.

A provider answers four questions about a request: is it really from the provider (`authenticate`), which logical
event is it (`dedup_key`), what does the provider want back right now (`reply`), and what does it mean (`parse`).
Everything a provider does differently from the others lives in its own module under this package.
"""
from __future__ import annotations

import codecs
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar
from urllib.parse import parse_qsl

from ingest.settings import SourceSettings

if TYPE_CHECKING:
    from crm_sync.model import CanonicalRecord
    from ingest.replies import ReplyContext


T = TypeVar("T")


class AuthenticationFailed(Exception):
    """The request is not from the provider (HTTP 401). The message is logged, never sent back."""


class RequestRejected(Exception):
    """The request is authentic but cannot be accepted at all (HTTP 4xx with a machine code)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ParseError(Exception):
    """The stored request cannot be turned into canonical records; the event goes dead and can be replayed."""


class IgnoreEvent(Exception):
    """The request is understood and deliberately produces nothing (the reason is kept on the event)."""


@dataclass(frozen=True)
class RawRequest:
    """A request exactly as received: what is stored, what replay re-parses."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    content_type: str = ""
    remote_addr: str = ""

    def header(self, name: str, default: str = "") -> str:
        """A header's value by case-insensitive name (the first one, should two differ only in case)."""
        return self._headers_by_lowered_name.get(name.lower(), default)

    @cached_property
    def _headers_by_lowered_name(self) -> dict[str, str]:
        # Built once per request: authentication and the dedup key look up several headers each.
        lowered: dict[str, str] = {}
        for key, value in self.headers.items():
            lowered.setdefault(key.lower(), value)
        return lowered

    def query(self) -> dict[str, str]:
        """Query parameters, first value wins; `+` and percent escapes decoded as UTF-8. Parsed once per request (a
        Roistat request reads them to authenticate, for its dedup key and for its reply): treat it as read-only."""
        return self._query_parameters

    def form(self) -> dict[str, str]:
        """A form-encoded body's fields, first value wins (empty for any other body); parsed once, read-only."""
        return self._form_fields

    @cached_property
    def _query_parameters(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True, encoding="utf-8", errors="replace"):
            out.setdefault(key, value)
        return out

    @cached_property
    def _form_fields(self) -> dict[str, str]:
        if "application/x-www-form-urlencoded" not in self.content_type.lower():
            return {}
        text = self.body.decode("utf-8", errors="replace")
        out: dict[str, str] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            out.setdefault(key, value)
        return out

    def json(self) -> Any:
        """The body as JSON, parsed once per request (the dedup key, the reply and parsing may each ask for it, so
        treat it as read-only); raises ParseError with a readable reason."""
        return self._json_document

    @cached_property
    def _json_document(self) -> Any:
        if not self.body.strip():
            raise ParseError("the body is empty; a JSON document was expected")
        try:
            return json.loads(_utf8_text(self.body))
        except json.JSONDecodeError as exc:
            raise ParseError(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except RecursionError:
            raise ParseError("the body's JSON nests deeper than this service reads") from None
        except ValueError as exc:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
            raise ParseError(f"the body's JSON cannot be read: {exc}") from None

    def json_object(self) -> dict[str, Any]:
        value = self.json()
        if not isinstance(value, dict):
            raise ParseError(f"the body is JSON but not an object (got {json_type_name(value)})")
        return value

    def body_sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def derived(self, read: Callable[["RawRequest"], T]) -> T:
        """What `read` (a module-level function) makes of this request, worked out once per request: a provider's
        payload model, which its dedup key and its reply both need. Treat it as read-only; an error is not kept."""
        cache = self.__dict__.setdefault("_derived", {})
        if read not in cache:
            cache[read] = read(self)
        return cache[read]


def _utf8_text(body: bytes) -> str:
    """The body as text, decoded once, as UTF-8 and nothing else: JSON exchanged between systems is UTF-8 (RFC 8259
    section 8.1). json.loads(bytes) would sniff UTF-16 and UTF-32 too, accepting a body the sender should not have
    sent and naming, when it fails, a codec the sender never used. A leading UTF-8 byte order mark, which the RFC
    lets a parser ignore, is ignored: Windows tools write one, and such bodies have always been read."""
    text = body.removeprefix(codecs.BOM_UTF8)  # the same object, not a copy, when there is none
    try:
        return str(text, "utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + len(body) - len(text)
        raise ParseError(f"the body is not UTF-8 text, as JSON must be (RFC 8259): byte 0x{body[offset]:02X} at "
                         f"offset {offset} ({exc.reason}){_other_encoding_hint(body)}") from None


def _other_encoding_hint(body: bytes) -> str:
    """What the sender most likely used instead, when the body says so with a byte order mark."""
    if body.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16: FF FE starts both LE marks
        return "; it starts with a UTF-32 byte order mark"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "; it starts with a UTF-16 byte order mark"
    return ""


def json_type_name(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words, for a message to a person: "null", not Python's "NoneType"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "an array" if isinstance(value, list) else "an object"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})


def secrets_equal(given: str | bytes | None, expected: str | bytes | None) -> bool:
    """Constant-time comparison that fails closed on anything missing."""
    if not given or not expected:
        return False
    # surrogatepass: a lone surrogate (a JSON "\\ud800" escape) is no configured secret, but must not raise.
    given_b = given.encode(errors="surrogatepass") if isinstance(given, str) else given
    expected_b = expected.encode(errors="surrogatepass") if isinstance(expected, str) else expected
    return hmac.compare_digest(given_b, expected_b)


def bearer_credentials(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, the scheme in any case (RFC 7235 section 2.1); None
    for another scheme or a value without one."""
    scheme, space, token = authorization.strip().partition(" ")
    return token.strip() if space and scheme.lower() == "bearer" else None


def stable_hash(*parts: Any) -> str:
    """A short deterministic digest of JSON-able parts, for dedup keys."""
    # surrogatepass: a lone surrogate from a provider's JSON hashes too (valid text hashes as it always did)
    return hashlib.sha256(_STABLE_JSON.encode(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


# One encoder for every key: json.dumps with options builds a new one per call (on the ingress path, per request).
_STABLE_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


class Provider:
    """Base class: defaults a provider may keep or override."""

    name: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]] = SourceSettings
    methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    # Headers that carry credentials: never stored, never shown.
    secret_headers: ClassVar[frozenset[str]] = frozenset()

    def authenticate(self, request: RawRequest, source: SourceSettings) -> None:
        """Raise AuthenticationFailed unless the request carries the source's credentials."""
        raise NotImplementedError

    def dedup_key(self, request: RawRequest) -> str:
        """The same value for every redelivery of one logical event, a new one for anything new."""
        return f"sha256:{stable_hash(request.method, request.query_string, request.body_sha256())}"

    def reply(self, context: "ReplyContext") -> Reply:
        """The synchronous answer; may read our own store, never a CRM."""
        return Reply()

    def parse(self, request: RawRequest) -> list["CanonicalRecord"]:
        """Canonical records for the stored request; ParseError or IgnoreEvent otherwise."""
        raise NotImplementedError

    def credentials_in(self, request: RawRequest) -> list[str]:
        """Credential values the stored request itself carries (in its query or body, which are kept byte-exact for
        replay): masked wherever a stored request is shown."""
        return []

    def parse_stored(self, request: RawRequest, event_id: int | None) -> list["CanonicalRecord"]:
        """parse() for the stored event with this id: for a provider that was answered the event's id (Roistat's
        order_id) and names it in later requests."""
        return self.parse(request)

    @classmethod
    def starter_source(cls, token: str) -> dict[str, str]:
        """The config section `crm-ingest dev` writes for a new user, credentials made from `token`."""
        return {"provider": cls.name, "url_secret": token}

    @classmethod
    def setup_instructions(cls, url: str, source: SourceSettings) -> str:
        """What to paste into the provider's settings, printed by `crm-ingest dev`."""
        return f"POST webhooks to {url}"
