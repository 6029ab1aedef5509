"""`crm-ingest deliveries list|show|retry`: the dead letters of the delivery engine, and retrying them."""
from __future__ import annotations

import json

import click

from ingest.listing import MAX_ID, MAX_LIST_LIMIT
from workers.cli_output import echo_next_page, echo_rows

# Ids as the database holds them (BIGINT): a larger number is a usage error, not a query that fails.
DELIVERY_ID = click.IntRange(1, MAX_ID)


def _runtime():
    from workers.cli import _runtime as runtime

    return runtime()


@click.group()
def deliveries() -> None:
    """Deliveries to the CRMs: what failed and why, and retrying after a fix."""


@deliveries.command("list")
@click.option("--status", help="pending, in_flight, succeeded, failed or dead")
@click.option("--destination")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, MAX_LIST_LIMIT))
@click.option("--before", type=DELIVERY_ID, help="only deliveries with a smaller id: the next page, as printed at "
                                                 "the end")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def deliveries_list(status, destination, limit, before, as_json) -> None:
    """Deliveries, newest first (by id), with the reason of each failure."""
    from ingest.delivery_admin import deliveries_page, delivery_summary

    delivery_filter = _delivery_filter(status, destination)
    runtime = _runtime()
    with runtime.sessions() as session:
        page = deliveries_page(session, delivery_filter, limit, before)
        rows = [delivery_summary(delivery) for delivery in page.rows]
    echo_rows(rows, as_json, _delivery_line, header=DELIVERY_COLUMNS, nothing="no deliveries match")
    echo_next_page(page.next_before)


DELIVERY_COLUMNS = (f"{'ID':>8}  {'UPDATED AT (UTC)':<19}  {'DESTINATION':<20} {'STATUS':<10} {'ATTEMPTS':>8}  "
                    f"IDEMPOTENCY KEY")


def _delivery_line(row: dict) -> str:
    return (f"{row['id']:>8}  {row['updated_at'][:19]}  {row['destination']:<20} {row['status']:<10} "
            f"{row['attempts']:>8}  {row['idempotency_key']}")


@deliveries.command("show")
@click.argument("delivery_id", type=DELIVERY_ID)
def deliveries_show(delivery_id: int) -> None:
    """One delivery: its attempts, last error, CRM record and the interaction and events behind it."""
    from crm_sync.schema import Delivery
    from ingest.delivery_admin import delivery_detail

    runtime = _runtime()
    with runtime.sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise click.ClickException(f"no delivery {delivery_id}")
        click.echo(json.dumps(delivery_detail(session, delivery), ensure_ascii=False, indent=2))


@deliveries.command("retry")
@click.option("--id", "delivery_id", type=DELIVERY_ID, help="retry this one delivery")
@click.option("--status", help="retry every delivery with this status: failed or dead")
@click.option("--destination", help="with --status: only the deliveries to this destination")
@click.option("--dry-run", is_flag=True, help="only count what would be retried")
def deliveries_retry(delivery_id, status, destination, dry_run) -> None:
    """Send failed or dead deliveries again with the current data (idempotent: never a duplicate in the CRM).

    One delivery (--id), or every delivery with --status (failed or dead), of one --destination if given, as
    POST /api/deliveries/retry."""
    # An --id with filters would ignore them; a --destination alone names no status to retry.
    if (delivery_id is not None and (status or destination)) or (delivery_id is None and not status):
        raise click.UsageError(_retry_usage())
    runtime = _runtime()
    if delivery_id is not None:
        _retry_one(runtime, delivery_id, dry_run)
    else:
        _retry_matching(runtime, _delivery_filter(status, destination), dry_run)


def _retry_usage() -> str:
    from crm_sync.schema import DeliveryStatus

    return (f"give --id ID, or --status {' or '.join(DeliveryStatus.RETRIABLE)} with an optional --destination "
            f"(not both); --dry-run only counts")


def _retry_one(runtime, delivery_id: int, dry_run: bool) -> None:
    from ingest.delivery_admin import retry_deliveries

    _refuse_what_cannot_be_retried(runtime, delivery_id)
    if dry_run:
        click.echo(f"would retry delivery {delivery_id}")
        return
    if not retry_deliveries(runtime, [delivery_id]):  # a drainer or another retry changed it since the check
        raise click.ClickException(f"delivery {delivery_id} was not retried: it changed meanwhile; see "
                                   f"`crm-ingest deliveries show {delivery_id}`")
    click.echo(f"retrying delivery {delivery_id}")


def _retry_matching(runtime, delivery_filter, dry_run: bool) -> None:
    from ingest.delivery_admin import DestinationNotConfigured, retry_matching
    from ingest.listing import BadFilter

    try:
        outcome = retry_matching(runtime, delivery_filter, dry_run)
    except BadFilter as exc:  # a status that cannot be retried
        raise click.BadParameter(str(exc), param_hint="'--status'") from None
    except DestinationNotConfigured as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would retry" if dry_run else "retrying"
    click.echo(f"{verb} {outcome['matching'] if dry_run else outcome['retried']} of {outcome['matching']} "
               f"delivery(ies)")


def _refuse_what_cannot_be_retried(runtime, delivery_id: int) -> None:
    from crm_sync.schema import Delivery, DeliveryStatus
    from ingest.delivery_admin import DestinationNotConfigured, require_configured

    with runtime.sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise click.ClickException(f"no delivery {delivery_id}")
        if delivery.status not in DeliveryStatus.RETRIABLE:
            raise click.ClickException(f"delivery {delivery_id} is {delivery.status}; only "
                                       f"{' and '.join(DeliveryStatus.RETRIABLE)} deliveries can be retried")
        try:
            require_configured(runtime, delivery.destination)
        except DestinationNotConfigured as exc:
            raise click.ClickException(f"delivery {delivery_id}: {exc}") from None


def _delivery_filter(status, destination):
    from ingest.delivery_admin import DeliveryFilter
    from ingest.event_admin import BadFilter

    try:
        return DeliveryFilter.parse(status, destination)
    except BadFilter as exc:
        raise click.BadParameter(str(exc)) from None
