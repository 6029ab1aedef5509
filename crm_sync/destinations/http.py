"""HTTP calls to a CRM, and what their failures mean for the delivery engine.

Every vendor module sends its requests through `VendorApi`, which turns transport failures and HTTP statuses into
`TransientError` / `PermanentError` with a reason class. A vendor whose error bodies say more than the status (HubSpot's
`policyName`, Bitrix24's `QUERY_LIMIT_EXCEEDED`, Pipedrive's `feature_capping_*`) passes a `classify` hook that looks
at the body first; whatever it leaves undecided falls back to the status rules here.
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
_BODY_EXCERPT = 300


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
    except ValueError:
        return None


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
    detail = f"{what}: HTTP {status}: {response.text[:_BODY_EXCERPT]}"
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


class VendorApi:
    """A CRM's base URL and credentials over the engine's `httpx.Client`, counting the calls it makes.

    `what` in messages is the method and path without the base URL, so a secret inside the URL (Bitrix24's webhook
    code) never reaches a log line or a dead letter. A path is appended to the base URL without its trailing slash;
    the empty path calls the base URL exactly as configured (a webhook receiver's `/hook/` is not its `/hook`, and
    its query string may carry the receiver's routing or token).
    """

    def __init__(self, http: httpx.Client, vendor: str, base_url: str, headers: dict[str, str] | None = None,
                 classify: Classifier | None = None):
        self.http, self.vendor, self.base_url = http, vendor, base_url
        self.headers = headers or {}
        self.classify = classify
        self.calls = 0

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None, content: bytes | None = None,
                headers: dict[str, str] | None = None, accept: Iterable[int] = ()) -> httpx.Response:
        """The response when its status is 2xx or in `accept`; otherwise the classified error is raised."""
        what = f"{self.vendor} {method} {path}"
        self.calls += 1
        try:
            response = self.http.request(method, self.url(path), params=params, json=json, content=content,
                                         headers={**self.headers, **(headers or {})})
        except httpx.TimeoutException as exc:
            raise TransientError("crm_unavailable", f"{what}: timed out ({type(exc).__name__})",
                                 outcome_unknown=maybe_written(method, exc)) from exc
        except httpx.TransportError as exc:
            raise TransientError("crm_unavailable", f"{what}: {type(exc).__name__}: {exc}",
                                 outcome_unknown=maybe_written(method, exc)) from exc
        if 200 <= response.status_code < 300 or response.status_code in set(accept):
            return response
        raise (self.classify(response, what) if self.classify else None) or error_for_status(response, what)

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}{path}" if path else self.base_url

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded body of a successful call (None for 204 or an empty body)."""
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        body = json_or_none(response)
        if body is None:
            raise TransientError("crm_unavailable", f"{self.vendor} {method} {path}: answered "
                                 f"HTTP {response.status_code} with a body that is not JSON")
        return body


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
