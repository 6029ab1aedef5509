"""`/hooks/<source>`: find the source, authenticate, store the raw request (one commit), reply, enqueue.

Nothing on this path talks to a CRM. The broker publish runs after the response is sent, so a slow or dead broker
never delays an acknowledgement; the relay covers whatever the publish misses. The request's log line and its
acknowledgement-time sample come after the response too.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable

from flask import Blueprint, Request, Response, current_app, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge

from ingest.db import driver_message
from ingest.errors import DATABASE_RETRY_AFTER_SECONDS, ApiError
from ingest.events import EventRef, StoredEvent, store_event
from ingest.logs import REQUEST_LOGGED, request_fields
from ingest.metrics import ACK_SECONDS, REQUESTS
from ingest.providers import AuthenticationFailed, Provider, RawRequest, Reply, RequestRejected, get_provider
from ingest.providers.base import secrets_equal, stable_hash
from ingest.replies import ReplyContext
from ingest.runtime import Runtime
from ingest.settings import SourceSettings

MAX_DEDUP_KEY_LENGTH = 255
MAX_CACHED_HEADER_NAMES = 512
REDACTED = "<url_secret>"

log = logging.getLogger(__name__)
hooks = Blueprint("hooks", __name__)


# Every method reaches the view, so that a method the provider does not use is answered (405 with Allow) and counted
# per source like any other refusal; the router would refuse it unseen. OPTIONS too: Flask's automatic answer (200,
# every routed method allowed) would tell a scanner nothing true and would answer for unknown sources and wrong URL
# secrets alike. HEAD comes with GET (werkzeug) and is refused by the view as well.
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@hooks.route("/hooks/<source_name>", methods=ANY_METHOD, provide_automatic_options=False)
@hooks.route("/hooks/<source_name>/<url_secret>", methods=ANY_METHOD, provide_automatic_options=False)
def receive(source_name: str, url_secret: str | None = None):
    started = time.perf_counter()
    current = request._get_current_object()  # once: each read through the proxy looks the request up again
    runtime: Runtime = current_app.extensions["crm_ingest"]
    source = _find_source(runtime, source_name, url_secret)
    provider = get_provider(source.provider)
    outcome = "error"
    try:
        reply, stored = _accept(runtime, source, provider, current)
        outcome = "duplicate" if stored.is_duplicate else "accepted"
    except ApiError as exc:
        outcome = str(exc.status)
        raise
    except HTTPException as exc:  # werkzeug's own refusals on the way, such as 413 for a body over max_body_bytes
        outcome = str(exc.code)
        raise
    finally:
        _metric_child(REQUESTS, source.name, provider.name, outcome).inc()
    response = _response(reply)
    seconds = time.perf_counter() - started
    # After the response is sent, as gunicorn writes its access line: the acknowledgement waits for neither.
    response.call_on_close(_request_recorder(stored, source, provider, outcome, response.status_code, seconds,
                                             current.environ))
    if not stored.is_duplicate:
        event = EventRef(stored.id, source.name)
        response.call_on_close(lambda: runtime.outbox.publish_after_response([event]))
    return response


def _request_recorder(stored: StoredEvent, source: SourceSettings, provider: Provider, outcome: str, status: int,
                      seconds: float, environ: dict) -> Callable[[], None]:
    """The request's acknowledgement time and its one line: the event it stored, with the fields of an access line
    (which it replaces, so the line is claimed now: gunicorn writes the access line before closing the response)."""
    logs = log.isEnabledFor(logging.INFO)
    if logs:
        environ[REQUEST_LOGGED] = True

    def record() -> None:
        _metric_child(ACK_SECONDS, provider.name).observe(seconds)
        if logs:
            log.info("event redelivered, counted on the first" if stored.is_duplicate else "event stored", extra={
                "event_id": stored.id, "source": source.name, "provider": source.provider, "outcome": outcome,
                **request_fields(environ, status, round(seconds * 1000, 3))})
    return record


def _find_source(runtime: Runtime, name: str, url_secret: str | None) -> SourceSettings:
    """Unknown source and wrong URL secret look alike (404), so a scan learns nothing."""
    source = runtime.settings.source(name)
    if source is not None:
        expected = source.url_secret.get_secret_value() if source.url_secret else None
        if expected is None and url_secret is None or secrets_equal(url_secret, expected):
            return source
    REQUESTS.labels(name if source else "", source.provider if source else "", "404").inc()
    raise ApiError(404, "unknown_source", "no webhook source at this URL")


def _accept(runtime: Runtime, source: SourceSettings, provider: Provider, current: Request
            ) -> tuple[Reply, StoredEvent]:
    """Authenticate and store; the provider's reply and the stored event (the first one, for a redelivery)."""
    if current.method not in provider.methods:
        allowed = ", ".join(sorted(provider.methods))
        raise ApiError(405, "method_not_allowed", f"{provider.name} webhooks use {allowed}, not {current.method}",
                       headers={"Allow": allowed})
    raw = _raw_request(source, current)
    try:
        provider.authenticate(raw, source)
    except AuthenticationFailed as exc:
        log.warning("source %s: authentication failed: %s (from %s)", source.name, exc, raw.remote_addr)
        raise ApiError(401, "authentication_failed", "the request does not carry this source's credentials") from None
    except RequestRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    try:
        stored = store_event(runtime.engine, source=source.name, provider=source.provider,
                             dedup_key=_dedup_key(provider, raw), request=raw,
                             secret_headers=provider.secret_headers)
    except SQLAlchemyError as exc:
        log.error("source %s: cannot store the request, asking the provider to retry: %s", source.name,
                  driver_message(exc))  # not str(exc): its SQL and parameters could hold the request's values
        raise ApiError(503, "database_unavailable", "the request could not be stored; retry later",
                       {"Retry-After": DATABASE_RETRY_AFTER_SECONDS}) from None
    return _reply(provider, ReplyContext(stored, raw, source, runtime.read_sessions, runtime.settings)), stored


def _raw_request(source: SourceSettings, current: Request) -> RawRequest:
    query = current.query_string
    try:
        query_text = query.decode("utf-8")
    except UnicodeDecodeError:
        query_text = query.decode("latin-1")
    return RawRequest(
        method=current.method,
        # The URL secret is a credential: it is never stored, so the admin API cannot show it.
        path=f"/hooks/{source.name}/{REDACTED}" if source.url_secret else current.path,
        query_string=query_text,
        headers=_without_url_secret(_headers(current.environ), source),
        body=_body(current),
        content_type=current.content_type or "",
        remote_addr=current.remote_addr or "",
    )


def _body(current: Request) -> bytes:
    """The whole body; 413 past MAX_CONTENT_LENGTH (max_body_bytes), 400 or 408 for one that never arrived whole.

    werkzeug raises 413 for a declared length over the limit, but it reads a body sent without one (chunked) only up
    to the limit and stops there without a word: that would store a truncated body and answer 200. One more byte
    from the server's own stream tells whether there was more. Likewise a connection that ends before the declared
    length gives a short body, not an error.
    """
    try:
        body = current.get_data(cache=True)
    except ClientDisconnected as exc:
        # The server's read ran out of time (BlockingIOError: workers.slow_clients), or the connection ended early.
        if isinstance(exc.__context__, BlockingIOError):
            raise ApiError(408, "request_timeout", "the body stopped arriving before its end; send the request again",
                           {"Connection": "close"}) from None
        raise _incomplete_body() from None
    declared = current.content_length
    if declared is not None and len(body) < declared:  # gunicorn ends the stream at the connection's end, unsaid
        raise _incomplete_body()
    if declared is None:  # only then: the limit is looked up through the app, per request
        limit = current.max_content_length
        if limit is not None and len(body) >= limit and current.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return body


def _without_url_secret(headers: dict[str, str], source: SourceSettings) -> dict[str, str]:
    """A proxy's X-Original-URI, X-Forwarded-Uri or Referer may repeat the path, URL secret included: it is not
    stored there either."""
    if source.url_secret is None:
        return headers
    secret = source.url_secret.get_secret_value()
    return {name: value.replace(secret, REDACTED) if secret in value else value for name, value in headers.items()}


def _incomplete_body() -> ApiError:
    return ApiError(400, "incomplete_body", "the connection ended before the whole body arrived")


def _headers(environ: dict) -> dict[str, str]:
    """The request's headers as werkzeug's `request.headers` lists them (`HTTP_USER_AGENT` as `User-Agent`, and
    Content-Type and Content-Length when set), in one pass with each environ key's name worked out once per process:
    werkzeug's generator re-derives every name on every request."""
    headers = {}
    for key, value in environ.items():
        name = _HEADER_NAMES.get(key)
        if name is None:
            name = _header_name(key)
            if len(_HEADER_NAMES) < MAX_CACHED_HEADER_NAMES:  # a sender inventing names cannot grow it for good
                _HEADER_NAMES[key] = name
        if name and (value or key not in _CGI_CONTENT_KEYS):
            headers[name] = value
    return headers


def _header_name(environ_key: str) -> str:
    """`HTTP_X_WEBHOOK_TOKEN` → `X-Webhook-Token`; "" for an environ key that is not a header."""
    if environ_key.startswith("HTTP_") and environ_key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        return environ_key[5:].replace("_", "-").title()
    if environ_key in _CGI_CONTENT_KEYS:
        return environ_key.replace("_", "-").title()
    return ""


_CGI_CONTENT_KEYS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_HEADER_NAMES: dict[str, str] = {}


def _dedup_key(provider: Provider, raw: RawRequest) -> str:
    """A provider that cannot read the body still gets a key: the body's hash, so the request is stored.

    A key the column cannot hold (too long, with a NUL, which PostgreSQL text refuses, or with a lone surrogate,
    which is not UTF-8 text: a provider's id read from JSON may carry either) is stored as its hash, the same for
    every redelivery: refusing it would answer 503 forever.
    """
    try:
        key = provider.dedup_key(raw)
    except Exception as exc:
        log.info("%s: no dedup key from the provider (%s); using the body hash", provider.name, exc)
        key = Provider.dedup_key(provider, raw)
    return key if _fits_the_column(key) else f"sha256:{stable_hash(key)}"


def _fits_the_column(key: str) -> bool:
    if len(key) > MAX_DEDUP_KEY_LENGTH or "\x00" in key:
        return False
    try:
        key.encode()
    except UnicodeEncodeError:
        return False
    return True


def _response(reply: Reply) -> Response:
    """The reply as Flask's jsonify writes it (a text or bytes body as it is), with one kept encoder."""
    if isinstance(reply.body, (str, bytes)):
        return Response(reply.body, status=reply.status)
    try:
        data = _REPLY_JSON.encode(reply.body).encode()
    except UnicodeEncodeError:  # a lone surrogate echoed from the provider's JSON: sent escaped, as it came
        data = _ASCII_REPLY_JSON.encode(reply.body).encode()
    return Response(data + b"\n", status=reply.status, mimetype="application/json")


# Flask's compact JSON as create_app configures it (keys in the provider's order, UTF-8 as it is): jsonify builds
# a new encoder for every response.
_REPLY_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=False, separators=(",", ":"),
                               default=DefaultJSONProvider.default)
_ASCII_REPLY_JSON = json.JSONEncoder(ensure_ascii=True, sort_keys=False, separators=(",", ":"),
                                     default=DefaultJSONProvider.default)


def _metric_child(metric, *labels: str):
    """The metric's child for these (configured, so few) labels, looked up once per process: `labels()` validates
    and locks every time."""
    key = (id(metric), labels)
    child = _METRIC_CHILDREN.get(key)
    if child is None:
        child = _METRIC_CHILDREN.setdefault(key, metric.labels(*labels))
    return child


_METRIC_CHILDREN: dict[tuple, object] = {}


def _reply(provider: Provider, context: ReplyContext) -> Reply:
    """The request is committed already: a failing reply must not turn into an error the provider retries."""
    try:
        return provider.reply(context)
    except Exception:
        log.exception("%s: reply failed for event %s; answering the plain acknowledgement", provider.name,
                      context.event.id)
        return Provider.reply(provider, context)
