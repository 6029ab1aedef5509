"""`crm-ingest purge` (retention of raw requests) and `crm-ingest forget` (right to erasure)."""
from __future__ import annotations

import json

import click


def _runtime():
    from workers.cli import _runtime as runtime

    return runtime()


@click.command()
@click.option("--older-than", required=True, metavar="DURATION",
              help="finished events received longer ago than this: 30d, 12h, 2w (or an ISO time)")
@click.option("--dry-run", is_flag=True, help="only count what would be purged")
def purge(older_than: str, dry_run: bool) -> None:
    """Remove the raw requests (body, headers, query string) of finished events; their metadata stays."""
    from ingest.event_admin import BadFilter, parse_since
    from ingest.retention import purge_raw_requests

    try:
        cutoff = parse_since(older_than)
    except BadFilter as exc:
        raise click.BadParameter(str(exc).replace("since", "--older-than", 1), param_hint="--older-than") from None
    report = purge_raw_requests(_runtime().sessions, cutoff, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} the raw requests of {report.events} finished event(s) received before "
               f"{cutoff.isoformat(timespec='seconds')} ({report.body_bytes} body bytes)")


@click.command()
@click.option("--email", help="the person's email, as any provider wrote it")
@click.option("--phone", help="the person's phone, in any format (numbers without a country code: "
                              "default_phone_region)")
@click.option("--dry-run", is_flag=True, help="show what would be erased, change nothing")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def forget(email: str | None, phone: str | None, dry_run: bool, as_json: bool) -> None:
    """Erase one person everywhere we store them (right to erasure), keeping a tombstone of the erasure.

    Given both, the email and the phone must find the same contacts; otherwise nothing is erased (exit status 1)."""
    from crm_sync.erasure import forget_person
    from crm_sync.erasure_matching import DifferentPeople
    from crm_sync.normalise import rules_from_settings

    if not (email or phone):
        raise click.UsageError("give --email and/or --phone")
    runtime = _runtime()
    try:
        report = forget_person(runtime.sessions, rules_from_settings(runtime.settings), email=email, phone=phone,
                               command="crm-ingest forget" + (" --dry-run" if dry_run else ""), dry_run=dry_run)
    except DifferentPeople as refused:
        raise click.ClickException(str(refused)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    for line in describe(report):
        click.echo(line)


def describe(report) -> list[str]:
    """The erasure report for a person at a terminal."""
    if not report.found:
        return [f"nobody found by {' and '.join(report.matched_by)}: nothing erased"]
    verb = "would erase" if report.dry_run else "erased"
    lines = [
        f"{verb}: {len(report.contact_ids)} contact(s) {_ids(report.contact_ids)}, {report.identities} identit(ies), "
        f"{report.values} stored value(s), {len(report.interaction_ids)} interaction(s) "
        f"{_ids(report.interaction_ids)}, the raw requests of {len(report.event_ids)} event(s) "
        f"{_ids(report.event_ids)}; {len(report.delivery_ids)} deliver(ies) stopped or masked",
    ]
    if report.in_flight_event_ids:
        lines.append(f"left alone: event(s) {_ids(report.in_flight_event_ids)} were being processed; run forget "
                     f"again once they have finished")
    if report.crm_records:
        lines.append("records already in CRMs: erase them in each CRM too:")
        lines += [f"  {record['destination']}: record {record['record_id']}"
                  f"{'  ' + record['url'] if record['url'] else ''}" for record in report.crm_records]
    if report.erasure_id:
        lines.append(f"tombstone: erasure {report.erasure_id} (ids and counts only)")
    return lines


def _ids(ids: list[int], shown: int = 20) -> str:
    if not ids:
        return ""
    more = f", … {len(ids) - shown} more" if len(ids) > shown else ""
    return "(" + ", ".join(str(i) for i in ids[:shown]) + more + ")"
