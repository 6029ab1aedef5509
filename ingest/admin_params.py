"""Reading what the admin routes are given: the query string, a JSON body, dry_run, and the page of a list
(`limit`, `before`).

Every mistake is an ApiError naming the parameter, so that a caller learns what to change from the 400 itself. A
parameter or body key a route does not read is such a mistake, never ignored: a typo (`sourc`, `statu`) would
otherwise drop a filter, and a bulk action would act on everything the remaining filters match.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from flask import request
from werkzeug.datastructures import MultiDict

from ingest.errors import ApiError
from ingest.listing import MAX_ID, BadFilter, Page, check_page

# For routes: an id past BIGINT names no row, and binding it to a query would fail; werkzeug answers 404 itself.
ID = f"int(max={MAX_ID})"
DEFAULT_LIST_LIMIT = 100
PAGE_PARAMETERS = ("limit", "before")
DRY_RUN = "dry_run"
# An error names this many unknown keys at most, each cut to this length: the body may hold a megabyte of them.
MAX_NAMED, MAX_NAME_LENGTH = 10, 40


def query_parameters(*accepted: str) -> MultiDict:
    """The query string, once every parameter in it is one of `accepted` and given once (a second `status=` would
    otherwise be ignored as silently as an unknown one)."""
    _refuse_unknown("query parameter", request.args.keys(), accepted)
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:
        raise ApiError(400, "bad_filter", f"give each query parameter once: {_quoted(repeated)} given more than once")
    return request.args


def _refuse_unknown(kind: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """400 `bad_filter` naming what in `given` is not `accepted`, and listing what is."""
    accepted = tuple(accepted)
    unknown = [name for name in given if name not in accepted]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ApiError(400, "bad_filter", f"unknown {kind}{plural} {_quoted(unknown)}: accepted are "
                                          f"{', '.join(accepted)}")


def json_object_body(example: str, accepted: Iterable[str]) -> dict[str, Any]:
    """The request's JSON object, whose keys are all among `accepted`; `example` shows the caller one in the error."""
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
    _refuse_unknown("key", body, accepted)
    return body


def no_body() -> None:
    """A route that acts on the one item its URL names reads no body: one given with keys is refused, so that a
    `{"dry_run": true}` sent to it is not taken for a dry run while the action happens. No body, or `{}`, is fine."""
    if request.content_length or request.headers.get("Transfer-Encoding"):
        json_object_body("{}", accepted=())


def dry_run_of(body: dict[str, Any]) -> bool:
    """`dry_run`, true unless the caller says false: a bulk action counts before it acts."""
    dry_run = body.get(DRY_RUN, True)
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


def _quoted(names: list[str]) -> str:
    shown = [json.dumps(name if len(name) <= MAX_NAME_LENGTH else name[:MAX_NAME_LENGTH] + "…", ensure_ascii=False)
             for name in names[:MAX_NAMED]]
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return ", ".join(shown) + more
