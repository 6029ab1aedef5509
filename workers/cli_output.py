"""Printing listed rows the same way in every `list` command: JSON lines, or a header and one readable line per row
with the reason."""
from __future__ import annotations

import json
from typing import Callable

import click

REASON = "REASON"


def echo_rows(rows: list[dict], as_json: bool, line: Callable[[dict], str], header: str | None = None,
              nothing: str | None = None) -> None:
    """`header` names the columns of `line` (text only: JSON lines carry their own names); `nothing`, said on
    stderr when no row matched, tells an empty result from a command that printed nothing at all."""
    if not rows:
        if nothing:
            click.echo(nothing, err=True)
        return
    if header and not as_json:
        click.echo(f"{header}  {REASON}")
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            reason = f"  {row['error_class']}: {row['error_message']}" if row.get("error_class") else ""
            click.echo(line(row) + reason)


def echo_next_page(next_before: int | None) -> None:
    """Where the next page starts, on stderr: stdout stays the rows alone (one JSON object per line with --json)."""
    if next_before is not None:
        click.echo(f"more: add --before {next_before} for the next page", err=True)
