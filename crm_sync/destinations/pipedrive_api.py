"""Pipedrive's API conventions shared by the Pipedrive modules: what its errors mean, how v1 listings page, and which
calls belong to its Search API, whose own limit the drain's rate gate enforces.

Pipedrive limits its Search API separately from everything else: 10 requests per 2 s per token on every plan, where a
plan's general burst is 20 to 120 (pipedrive.readme.io, "Rate limiting"). A destination's `rate` cannot express
that, so every search carries an `EndpointLimit` for the gate, and a burst of new people waits for search tokens
instead of drawing 429s.

Every answer comes in Pipedrive's envelope `{"success": true, "data": …}`; `data` reads it (see `envelope_data`).
"""
from __future__ import annotations

from typing import Any, Callable, ContextManager

import httpx

from crm_sync.delivery.ratelimit import EndpointLimit
from crm_sync.destinations.base import DeliveryError, PermanentError, RateLimit, TransientError, crm_id
from crm_sync.destinations.http import VendorApi, answer_error, answer_member, body_excerpt, json_or_none, \
    retry_after_seconds

PAGES = 5   # at most this many pages of a listing are read looking for our own write
PAGE_SIZE = 500
SEARCH_PATH_ENDS = ("/search", "/itemSearch", "/itemSearch/field")

Pagination = Callable[[dict[str, Any]], dict[str, Any]]


def classify(response: httpx.Response, what: str) -> DeliveryError | None:
    body = json_or_none(response)
    body = body if isinstance(body, dict) else {}
    code, message = str(body.get("code") or ""), str(body.get("error") or "")
    detail = f"{what}: HTTP {response.status_code}: {message or body_excerpt(response)}"
    if response.status_code == 403 and code.startswith("feature_capping"):
        return PermanentError("plan_limit", f"{detail} ({code})", status=403)
    if response.status_code == 429:
        reset = response.headers.get("x-ratelimit-reset")
        wait = retry_after_seconds(response) or (float(reset) if reset and reset.isdigit() else 2.0)
        return TransientError("rate_limit", detail, wait, 429)
    return None


class SearchLimitedClient:
    """The drain's HTTP client as `VendorApi` uses it, marking each call to the Search API with its limit.

    Marking by path keeps every call on one `VendorApi` (one call count, one error classification) and cannot miss
    a search added later."""

    def __init__(self, http: httpx.Client, search_rate: RateLimit):
        self.http = http
        self.search_limit = EndpointLimit("search", search_rate)

    def stream(self, method: str, url: str, **kwargs: Any) -> ContextManager[httpx.Response]:
        if httpx.URL(url).path.endswith(SEARCH_PATH_ENDS):
            kwargs["extensions"] = {**(kwargs.get("extensions") or {}), **self.search_limit.extensions}
        return self.http.stream(method, url, **kwargs)


def envelope_data(body: dict[str, Any], what: str, expect: type | tuple[type, ...], written: bool) -> Any:
    """`data` of an answer, of type `expect`. A 2xx saying `success: false` (Pipedrive's error text is quoted) or
    without `data` did not do what was asked, as far as we can tell: `answer_error`."""
    if body.get("success") is False:
        raise answer_error(what, f"answered success=false: {str(body.get('error') or body.get('error_info'))[:300]}",
                           written=written)
    return answer_member(body, "data", expect, what, written=written)


def data(api: VendorApi, method: str, path: str, expect: type | tuple[type, ...] = dict, **kwargs: Any) -> Any:
    """The `data` of a call's answer (see `envelope_data`)."""
    return envelope_data(api.json(method, path, **kwargs), f"pipedrive {method} {path}", expect,
                         written=method.upper() != "GET")


def created_id(record: Any, what: str, name: str) -> str:
    """The id of the record a write answered with: without one the write is not confirmed (it may have landed, and
    the retry's look-up finds it)."""
    found = crm_id(record.get("id")) if isinstance(record, dict) else None
    if found is None:
        raise answer_error(what, f"answered without the {name}'s id", written=True)
    return found


def listed(items: list[Any], what: str) -> list[dict[str, Any]]:
    """The records of a listing, each an object with an id (a read: otherwise `answer_error`)."""
    for item in items:
        if not isinstance(item, dict) or crm_id(item.get("id")) is None:
            raise answer_error(what, f"answered a record without its id: {str(item)[:100]}", written=False)
    return items


def v1_pages(api: VendorApi, path: str, params: dict[str, Any], pagination: Pagination) -> list[dict[str, Any]]:
    """A v1 listing, page by page (start/limit), up to `PAGES` pages; `pagination` finds where this endpoint says
    whether more pages follow. An empty listing is `data: null` (or `[]`)."""
    items: list[dict[str, Any]] = []
    start, what = 0, f"pipedrive GET {path}"
    for _ in range(PAGES):
        body = api.json("GET", path, params={**params, "start": start, "limit": PAGE_SIZE})
        items += listed(envelope_data(body, what, (list, type(None)), written=False) or [], what)
        page = pagination(body)
        if page.get("more_items_in_collection") is not True:
            break
        step = page.get("limit") if _count(page.get("limit")) else PAGE_SIZE
        start = page["next_start"] if _count(page.get("next_start")) else start + step
    return items


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def nested_pagination(body: dict[str, Any]) -> dict[str, Any]:
    """Most v1 listings (notes): `additional_data.pagination` = {start, limit, more_items_in_collection, next_start}."""
    page = additional_data(body).get("pagination")
    return page if isinstance(page, dict) else {}


def flat_pagination(body: dict[str, Any]) -> dict[str, Any]:
    """`GET /v1/leads` and, in the official clients' models, `GET /v1/personFields` put {start, limit,
    more_items_in_collection} in `additional_data` itself, without next_start; the nested form is accepted too."""
    return nested_pagination(body) or additional_data(body)


def additional_data(body: dict[str, Any]) -> dict[str, Any]:
    extra = body.get("additional_data")
    return extra if isinstance(extra, dict) else {}


def values(items: Any) -> list[str]:
    """Search hits list plain strings; person records list `{value, primary, label}`."""
    found = [item.get("value") if isinstance(item, dict) else item for item in _list(items)]
    return [str(value) for value in found if isinstance(value, (str, int)) and value]


def entries(items: Any) -> list[dict[str, Any]]:
    return [{"value": item["value"], "primary": bool(item.get("primary")), "label": item.get("label") or "work"}
            for item in _list(items) if isinstance(item, dict) and isinstance(item.get("value"), str)
            and item["value"]]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
