"""Pipedrive's API conventions shared by the Pipedrive modules: what its errors mean, how v1 listings page, and which
calls belong to its Search API, whose own limit the drain's rate gate enforces.

Pipedrive limits its Search API separately from everything else: 10 requests per 2 s per token on every plan, where a
plan's general burst is 20 to 120 (pipedrive.readme.io, "Rate limiting"). A destination's `rate` cannot express
that, so every search carries an `EndpointLimit` for the gate, and a burst of new people waits for search tokens
instead of drawing 429s.
"""
from __future__ import annotations

from typing import Any, Callable

import httpx

from crm_sync.delivery.ratelimit import EndpointLimit
from crm_sync.destinations.base import DeliveryError, PermanentError, RateLimit, TransientError
from crm_sync.destinations.http import VendorApi, json_or_none, retry_after_seconds

PAGES = 5   # at most this many pages of a listing are read looking for our own write
PAGE_SIZE = 500
SEARCH_PATH_ENDS = ("/search", "/itemSearch", "/itemSearch/field")

Pagination = Callable[[dict[str, Any]], dict[str, Any]]


def classify(response: httpx.Response, what: str) -> DeliveryError | None:
    body = json_or_none(response)
    body = body if isinstance(body, dict) else {}
    code, message = str(body.get("code") or ""), str(body.get("error") or "")
    detail = f"{what}: HTTP {response.status_code}: {message or response.text[:300]}"
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

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if httpx.URL(url).path.endswith(SEARCH_PATH_ENDS):
            kwargs["extensions"] = {**(kwargs.get("extensions") or {}), **self.search_limit.extensions}
        return self.http.request(method, url, **kwargs)


def v1_pages(api: VendorApi, path: str, params: dict[str, Any], pagination: Pagination) -> list[dict[str, Any]]:
    """A v1 listing, page by page (start/limit), up to `PAGES` pages; `pagination` finds where this endpoint says
    whether more pages follow."""
    items: list[dict[str, Any]] = []
    start = 0
    for _ in range(PAGES):
        body = api.json("GET", path, params={**params, "start": start, "limit": PAGE_SIZE}) or {}
        items += body.get("data") or []
        page = pagination(body)
        if not page.get("more_items_in_collection"):
            break
        start = page.get("next_start") or start + int(page.get("limit") or PAGE_SIZE)
    return items


def nested_pagination(body: dict[str, Any]) -> dict[str, Any]:
    """Most v1 listings (notes): `additional_data.pagination` = {start, limit, more_items_in_collection, next_start}."""
    return (body.get("additional_data") or {}).get("pagination") or {}


def flat_pagination(body: dict[str, Any]) -> dict[str, Any]:
    """`GET /v1/leads` and, in the official clients' models, `GET /v1/personFields` put {start, limit,
    more_items_in_collection} in `additional_data` itself, without next_start; the nested form is accepted too."""
    return nested_pagination(body) or body.get("additional_data") or {}


def values(items: Any) -> list[str]:
    """Search hits list plain strings; person records list `{value, primary, label}`."""
    return [item["value"] if isinstance(item, dict) else str(item) for item in items or [] if item]


def entries(items: Any) -> list[dict[str, Any]]:
    return [{"value": item["value"], "primary": bool(item.get("primary")), "label": item.get("label") or "work"}
            for item in items or [] if isinstance(item, dict) and item.get("value")]
