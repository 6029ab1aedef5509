"""`crm-ingest events list|show` and `crm-ingest replay`: stored events, and running them through the code again."""
from __future__ import annotations

import json

import click

from ingest.listing import MAX_ID, MAX_LIST_LIMIT
from workers.cli_output import echo_next_page, echo_rows

# Ids as the database holds them (BIGINT): a larger number is a usage error, not a query that fails.
EVENT_ID = click.IntRange(1, MAX_ID)
SINCE_HELP = "ISO time or a duration back from now: 30m, 2h, 7d"


def _runtime():
    from workers.cli import _runtime as runtime

    return runtime()


@click.group()
def events() -> None:
    """Stored events."""


@events.command("list")
@click.option("--status")
@click.option("--source")
@click.option("--provider")
@click.option("--since", help=SINCE_HELP)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, MAX_LIST_LIMIT))
@click.option("--before", type=EVENT_ID, help="only events with a smaller id: the next page, as printed at the end")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def events_list(status, source, provider, since, limit, before, as_json) -> None:
    """Stored events, newest first (by id, the order they were stored)."""
    from ingest.event_admin import event_summary, events_page

    event_filter = _event_filter(status, source, provider, since)
    runtime = _runtime()
    with runtime.sessions() as session:
        page = events_page(session, event_filter, limit, before)
        rows = [event_summary(event) for event in page.rows]
    echo_rows(rows, as_json, _event_line, header=EVENT_COLUMNS, nothing="no events match")
    echo_next_page(page.next_before)


# TIMES: how often the provider sent the request (a redelivery is stored once and counted).
EVENT_COLUMNS = f"{'ID':>8}  {'RECEIVED AT (UTC)':<19}  {'SOURCE':<20} {'STATUS':<10} {'TIMES':>5}"


def _event_line(row: dict) -> str:
    return (f"{row['id']:>8}  {row['received_at'][:19]}  {row['source']:<20} {row['status']:<10} "
            f"{row['duplicate_count'] + 1:>5}")


@events.command("show")
@click.argument("event_id", type=EVENT_ID)
def events_show(event_id: int) -> None:
    """One event with its raw request, as JSON."""
    from ingest.event_admin import event_detail
    from ingest.schema import Event

    runtime = _runtime()
    with runtime.sessions() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise click.ClickException(f"no event {event_id}")
        click.echo(json.dumps(event_detail(event), ensure_ascii=False, indent=2))


@click.command()
@click.option("--event", "event_id", type=EVENT_ID, help="replay this one event")
@click.option("--status", help="replay every event with this status (usually dead)")
@click.option("--source", help="replay every event of this source")
@click.option("--provider", help="replay every event of this provider")
@click.option("--since", help=f"replay every event received since: {SINCE_HELP}")
@click.option("--dry-run", is_flag=True, help="only count what would be replayed")
def replay(event_id, status, source, provider, since, dry_run) -> None:
    """Re-run the current code over stored requests (idempotent: a replay never duplicates).

    One event (--event), or every event matching the filters given (--status, --source, --provider, --since; at
    least one, all must match), as POST /api/replay. Only finished events (processed, ignored, dead) whose raw
    request is kept can be replayed."""
    # Both, or neither: an --event with filters would ignore them, and no filter at all would mean every event.
    if (event_id is not None) == any((status, source, provider, since)):
        raise click.UsageError(_replay_usage())
    runtime = _runtime()
    if event_id is not None:
        _replay_one(runtime, event_id, dry_run)
    else:
        _replay_matching(runtime, _event_filter(status, source, provider, since), dry_run)


def _replay_usage() -> str:
    from ingest.event_admin import FILTER_NAMES

    options = [f"--{name}" for name in FILTER_NAMES]
    return f"give --event ID, or {', '.join(options[:-1])} and/or {options[-1]} (not both); --dry-run only counts"


def _replay_one(runtime, event_id: int, dry_run: bool) -> None:
    from ingest.event_admin import replay_events

    _refuse_what_cannot_be_replayed(runtime, event_id)
    if dry_run:
        click.echo(f"would replay event {event_id}")
        return
    if not replay_events(runtime, [event_id]):  # a worker claimed it, or it was purged, since the check
        raise click.ClickException(f"event {event_id} was not replayed: it changed meanwhile; see "
                                   f"`crm-ingest events show {event_id}`")
    click.echo(f"replayed event {event_id}")


def _replay_matching(runtime, event_filter, dry_run: bool) -> None:
    from ingest.event_admin import replay_matching

    outcome = replay_matching(runtime, event_filter, dry_run)
    verb, count = ("would replay", outcome["replayable"]) if dry_run else ("replayed", outcome["replayed"])
    click.echo(f"{verb} {count} of {outcome['matching']} event(s){_left_alone(outcome)}")


def _left_alone(outcome: dict) -> str:
    from ingest.schema import FINAL_STATUSES

    notes = []
    if outcome["purged"]:
        notes.append(f"{outcome['purged']} purged: their raw request is gone")
    if outcome["not_finished"]:
        notes.append(f"{outcome['not_finished']} not finished: only {', '.join(FINAL_STATUSES)} events can be "
                     f"replayed")
    return f" ({'; '.join(notes)})" if notes else ""


def _refuse_what_cannot_be_replayed(runtime, event_id: int) -> None:
    from ingest.event_admin import purged_message
    from ingest.schema import FINAL_STATUSES, Event

    with runtime.sessions() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise click.ClickException(f"no event {event_id}")
        if event.purged_at is not None:
            raise click.ClickException(purged_message(event))
        if event.status not in FINAL_STATUSES:
            raise click.ClickException(f"event {event_id} is {event.status}; only finished events "
                                       f"({', '.join(FINAL_STATUSES)}) can be replayed: replay it once it has "
                                       f"finished")


def _event_filter(status, source, provider, since):
    from ingest.event_admin import BadFilter, EventFilter

    try:
        return EventFilter.parse(status, source, provider, since)
    except BadFilter as exc:
        raise click.BadParameter(str(exc)) from None
