"""Printing listed rows the same way in every `list` command: JSON lines, or one readable line with the reason."""
from __future__ import annotations

import json
from typing import Callable

import click


def echo_rows(rows: list[dict], as_json: bool, line: Callable[[dict], str]) -> None:
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
