"""What the event and delivery listings share: the filter error, the id bounds, and newest-first pages by id.

Pages are keyset pages on the id (`before`: ids below it), not offsets: a page stays correct while new rows arrive,
and the database walks the primary key instead of counting past every row already shown. Ids grow in the order rows
are stored, so "newest first" is id order; an `updated_at` order would move rows between pages while they change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

MAX_LIST_LIMIT = 1000
# Ids are BIGINT on PostgreSQL and INTEGER (64-bit) on SQLite: a larger number names no row, and binding it fails.
MAX_ID = 2**63 - 1


class BadFilter(ValueError):
    pass


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_before: int | None  # the `before` of the next page; None when this page is the last


def check_page(limit: int, before: int | None) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadFilter(f"limit must be from 1 to {MAX_LIST_LIMIT}, not {limit}; for more, page on with before")
    if before is not None and not 1 <= before <= MAX_ID:
        raise BadFilter(f"before must be an id from 1 to {MAX_ID}, not {before}")


def newest_first_page(session: Session, query, id_column, limit: int, before: int | None) -> Page:
    """The `limit` rows of `query` with the highest ids below `before`, and the cursor to the rest."""
    check_page(limit, before)
    if before is not None:
        query = query.where(id_column < before)
    # One row more than asked tells whether another page exists without a count over the whole filter.
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].id if more else None)


def filter_text(name: str, value: Any) -> str | None:
    """A filter value as given in a query string, a JSON body or an option: a string, or None when absent.

    JSON bodies can carry lists, objects and numbers; they are refused here, naming the field, before any of them
    reaches a comparison in SQL."""
    if value is None or isinstance(value, str):
        return value
    raise BadFilter(f"{name} must be a string, not {_json_kind(value)}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return {dict: "an object", list: "a list", int: "a number", float: "a number"}.get(type(value), type(value).__name__)
