"""HTTP calls to a CRM, and what their failures mean for the delivery engine.

Every vendor module sends its requests through `VendorApi`, which turns transport failures and HTTP statuses into
`TransientError` / `PermanentError` with a reason class. A vendor whose error bodies say more than the status (HubSpot's
`policyName`, Bitrix24's `QUERY_LIMIT_EXCEEDED`, Pipedrive's `feature_capping_*`) passes a `classify` hook that looks
at the body first; whatever it leaves undecided falls back to the status rules here.

A 2xx is read through `answer_object`: a body that is not JSON, or JSON of another shape than the call's answer, is a
`TransientError("crm_answer")` (after a write, with `outcome_unknown`: it may have landed, and the retry's look-ups
find it), never a "nothing found" and never a Python exception out of the module. Messages quote at most
`_BODY_EXCERPT` characters of the first bytes of a body, with the secrets a `VendorApi` was given masked.
"""
from __future__ import annotations

import email.utils
import time
from dataclasses import replace
from typing import Any, Callable, Iterable

import httpx

from crm_sync.destinations.base import (
    DeliveryError,
    DeliveryRequest,
    DeliveryResult,
    Destination,
    PermanentError,
    TransientError,
    sane_retry_after,
)

Classifier = Callable[[httpx.Response, str], DeliveryError | None]
_BODY_EXCERPT = 300        # characters of a body quoted in a message
_EXCERPT_BYTES = 4096      # bytes of a body decoded to quote them: never the whole of a (possibly huge) body
ANSWER = "crm_answer"      # the reason of a 2xx that cannot be read as the call's answer
MASK = "<secret>"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds from now: either delta-seconds or an HTTP date (RFC 9110 §10.2.3). None when absent
    or meaningless (negative, not finite); at most a day (MAX_RETRY_AFTER_SECONDS), whatever the CRM says."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return sane_retry_after(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return sane_retry_after(max(0.0, when.timestamp() - time.time()))   # a date gone by: now


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):   # not JSON, not UTF-8, or nested too deep to decode
        return None


def body_excerpt(response: httpx.Response, limit: int = _BODY_EXCERPT) -> str:
    """The start of a body for a message, decoded from its first few KB only (`response.text` decodes all of it)."""
    head = response.content[:_EXCERPT_BYTES]
    try:
        text = head.decode(response.charset_encoding or "utf-8", "replace")
    except LookupError:   # a charset Python does not know
        text = head.decode("utf-8", "replace")
    return text[:limit]


def answer_error(what: str, problem: str, *, written: bool) -> TransientError:
    """A 2xx that does not say what the call did (`problem`: what came back). After a write (`written`) the write may
    have landed: the retry waits as after a lost answer, and its look-ups find the record instead of making another."""
    return TransientError(ANSWER, f"{what}: {problem}", outcome_unknown=written)


def is_write(response: httpx.Response) -> bool:
    return response.request.method.upper() not in _READS


def answer_object(response: httpx.Response, what: str, expect: type | tuple[type, ...] = dict,
                  written: bool | None = None) -> Any:
    """The JSON body of a 2xx answer, which must be of type `expect` (an object unless told otherwise). Anything else
    (an empty body, a page that is not JSON, JSON of another type) raises `answer_error`, quoting what came back.
    `written`: whether the call may have written (default: any method but GET, HEAD and OPTIONS; a read sent as a
    POST, such as HubSpot's batch/read, says False)."""
    if not response.content:
        found = "an empty body"
    else:
        body = json_or_none(response)
        if isinstance(body, expect):
            return body
        null = len(response.content) < 16 and response.content.strip() == b"null"
        found = f"JSON {_kind(body)} where {_kinds(expect)} was expected" if body is not None or null \
            else "a body that is not JSON"
        found += f" ({response.headers.get('content-type', 'no content-type')}): {body_excerpt(response)!r}"
    raise answer_error(what, f"answered HTTP {response.status_code} with {found}",
                       written=is_write(response) if written is None else written)


def answer_member(body: dict[str, Any], name: str, expect: type | tuple[type, ...], what: str, *, written: bool
                  ) -> Any:
    """`body[name]`, which the call's answer must hold, of type `expect`; else `answer_error`."""
    if name not in body:
        raise answer_error(what, f"answered without {name!r} (keys: {_keys(body)})", written=written)
    value = body[name]
    if not isinstance(value, expect):
        raise answer_error(what, f"answered {name!r} as JSON {_kind(value)} where {_kinds(expect)} was expected",
                           written=written)
    return value


_KINDS = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
          bool: "a boolean", type(None): "null"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _kinds(expect: type | tuple[type, ...]) -> str:
    return " or ".join(dict.fromkeys(_KINDS.get(t, t.__name__) for t in (expect if isinstance(expect, tuple)
                                                                             else (expect,))))


def _keys(body: dict[str, Any]) -> str:
    names = [str(k)[:40] for k in list(body)[:8]]
    return ", ".join(names) + (", …" if len(body) > 8 else "") if names else "none"


# Failures after the request went out: the CRM may have received it and may still commit it. A connection that was
# never made (ConnectError, ConnectTimeout) or a pool that had no connection to give (PoolTimeout) sent nothing.
_SENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def maybe_written(method: str, exc: httpx.TransportError) -> bool:
    """Whether a call that failed this way may still have written: a write whose answer was lost after it was sent."""
    return method.upper() not in _READS and isinstance(exc, _SENT)


def error_for_status(response: httpx.Response, what: str) -> DeliveryError:
    """The default meaning of an unsuccessful status, for whatever a vendor hook did not recognise."""
    status = response.status_code
    detail = f"{what}: HTTP {status}: {body_excerpt(response)}"
    if status == 429:
        return TransientError("rate_limit", detail, retry_after_seconds(response), status)
    if status >= 500 or status in (408, 423, 425):
        # A gateway that gave up waiting (504) passed the write on: the CRM may still commit it, as after our timeout.
        late = status == 504 and response.request.method.upper() not in _READS
        return TransientError("crm_unavailable", detail, retry_after_seconds(response), status, outcome_unknown=late)
    if status in (401, 403):
        return PermanentError("auth", detail, status=status)
    if status == 402:
        return PermanentError("plan_limit", detail, status=status)
    if status == 404:
        return PermanentError("not_found", detail, status=status)
    if 300 <= status < 400:
        return PermanentError("redirect", f"{detail} (redirects are not followed)", status=status)
    return PermanentError("validation", detail, status=status)


# No answer a module reads comes near this (a HubSpot batch of 100 contacts is a few hundred KB): a CRM or a proxy
# answering more is broken, and reading all of it could run a worker out of memory.
MAX_ANSWER_BYTES = 16 * 2**20


class AnswerTooLarge(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def _send_capped(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """`http.request`, with the answer read (decompressed) only up to MAX_ANSWER_BYTES: AnswerTooLarge past it.
    `http` is the drain's httpx.Client, or what stands for it with the same `stream` (pipedrive_api)."""
    with http.stream(method, url, **kwargs) as response:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise AnswerTooLarge(response.status_code)
    response._content = bytes(body)   # as Response.read() keeps what it read
    return response


class VendorApi:
    """A CRM's base URL and credentials over the engine's `httpx.Client`, counting the calls it makes.

    `what` in messages is the method and path without the base URL, so a secret inside the URL (Bitrix24's webhook
    code) never reaches a log line or a dead letter. A path is appended to the base URL without its trailing slash;
    the empty path calls the base URL exactly as configured (a webhook receiver's `/hook/` is not its `/hook`, and
    its query string may carry the receiver's routing or token). `secrets` (a token, Bitrix24's webhook code) are
    replaced with `<secret>` in the message of every error raised here, should a CRM or a proxy echo them back.
    """

    def __init__(self, http: httpx.Client, vendor: str, base_url: str, headers: dict[str, str] | None = None,
                 classify: Classifier | None = None, secrets: Iterable[str] = ()):
        self.http, self.vendor, self.base_url = http, vendor, base_url
        self.headers = headers or {}
        self.classify = classify
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self.calls = 0

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def masked(self, error: DeliveryError) -> DeliveryError:
        """The error with the secrets masked in its message (the same object)."""
        error.message = self.mask(error.message)
        error.args = (error.message,)
        return error

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None, content: bytes | None = None,
                headers: dict[str, str] | None = None, accept: Iterable[int] = ()) -> httpx.Response:
        """The response when its status is 2xx or in `accept`; otherwise the classified error is raised."""
        what = f"{self.vendor} {method} {path}"
        self.calls += 1
        try:
            response = _send_capped(self.http, method, self.url(path), params=params, json=json, content=content,
                                    headers={**self.headers, **(headers or {})})
        except AnswerTooLarge as exc:
            raise TransientError(ANSWER, f"{what}: answered more than {MAX_ANSWER_BYTES // 2**20} MB (HTTP "
                                 f"{exc.status}); not read further", outcome_unknown=method.upper() not in _READS
                                 ) from None
        except httpx.TimeoutException as exc:
            raise TransientError("crm_unavailable", f"{what}: timed out ({type(exc).__name__})",
                                 outcome_unknown=maybe_written(method, exc)) from exc
        except httpx.TransportError as exc:
            raise self.masked(TransientError("crm_unavailable", f"{what}: {type(exc).__name__}: {exc}",
                                             outcome_unknown=maybe_written(method, exc))) from exc
        if 200 <= response.status_code < 300 or response.status_code in set(accept):
            return response
        raise self.masked((self.classify(response, what) if self.classify else None)
                          or error_for_status(response, what))

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}{path}" if path else self.base_url

    def json(self, method: str, path: str, *, expect: type | tuple[type, ...] = dict, nothing: Iterable[int] = (),
             written: bool | None = None, **kwargs: Any) -> Any:
        """The decoded body of a successful call, of type `expect` (see `answer_object`); None only for a status in
        `nothing`, where the vendor documents it as "nothing there" (Kommo's 204 for an empty listing)."""
        response = self.request(method, path, **kwargs)
        if response.status_code in set(nothing):
            return None
        return self.answer(response, f"{self.vendor} {method} {path}", expect, written)

    def answer(self, response: httpx.Response, what: str, expect: type | tuple[type, ...] = dict,
               written: bool | None = None) -> Any:
        """`answer_object` of a response this API got, its secrets masked in the error."""
        try:
            return answer_object(response, what, expect, written)
        except DeliveryError as exc:
            raise self.masked(exc) from None


class VendorDestination(Destination):
    """A destination that talks to its CRM through `self.api`; results report how many calls they cost."""

    api: VendorApi

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        before = self.api.calls
        result = super().deliver(request)
        return replace(result, api_calls=self.api.calls - before)


def share_calls(results: list[DeliveryResult | DeliveryError], calls: int) -> list[DeliveryResult | DeliveryError]:
    """Spread a batch's call count over its successful results, so that the shares add up to the total."""
    done = [i for i, r in enumerate(results) if isinstance(r, DeliveryResult)]
    if not done:
        return results
    share, extra = divmod(calls, len(done))
    out = list(results)
    for n, i in enumerate(done):
        out[i] = replace(results[i], api_calls=share + (1 if n < extra else 0))
    return out
