"""Reading what the admin routes are given: a JSON body, dry_run, and the page of a list (`limit`, `before`).

Every mistake is an ApiError naming the parameter, so that a caller learns what to change from the 400 itself.
"""
from __future__ import annotations

from typing import Any

from flask import request

from ingest.errors import ApiError
from ingest.listing import MAX_ID, BadFilter, Page, check_page

# For routes: an id past BIGINT names no row, and binding it to a query would fail; werkzeug answers 404 itself.
ID = f"int(max={MAX_ID})"
DEFAULT_LIST_LIMIT = 100


def json_object_body(example: str) -> dict[str, Any]:
    """The request's JSON object; `example` shows the caller one in the error."""
    if not request.is_json:
        given = f"Content-Type {request.mimetype}" if request.mimetype else "no Content-Type"
        raise ApiError(400, "bad_request", f"send Content-Type: application/json (this request has {given}) and a "
                                           f"JSON object such as {example}")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # silent covers what the JSON decoder raises, not nesting too deep for it
        raise ApiError(400, "bad_request", f"the JSON body nests too deep; send a JSON object such as {example}"
                       ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", f"send a JSON object such as {example}")
    return body


def dry_run_of(body: dict[str, Any]) -> bool:
    """`dry_run`, true unless the caller says false: a bulk action counts before it acts."""
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "bad_request", "dry_run must be true or false")
    return dry_run


def page_parameters() -> tuple[int, int | None]:
    """`limit` (1 to MAX_LIST_LIMIT; a larger one is refused rather than cut, so that a caller never takes a cut
    page for everything) and `before` (an id) from the query string."""
    limit = _whole_number("limit", request.args.get("limit"), DEFAULT_LIST_LIMIT)
    before = _whole_number("before", request.args.get("before"), None)
    try:
        check_page(limit, before)
    except BadFilter as exc:
        raise ApiError(400, "bad_filter", str(exc)) from None
    return limit, before


def page_body(name: str, page: Page, summary) -> dict[str, Any]:
    """A list response: the rows under `name`, and `next_before`, the `before` of the next page (null: the last)."""
    return {name: [summary(row) for row in page.rows], "next_before": page.next_before}


def _whole_number(name: str, text: str | None, default: int | None) -> int | None:
    if text is None or text.strip() == "":
        return default
    try:
        return int(text.strip())
    except ValueError:
        raise ApiError(400, "bad_filter", f"{name} must be a whole number, not {text!r}") from None
