"""The chaos run's printed summary: what was sent, what went wrong on purpose, how it ended, the invariants."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.chaos_run import ChaosReport


def summary(report: "ChaosReport") -> str:
    settings, stream, first, final = report.settings, report.stream, report.first_round, report.final
    lines = [
        f"crm-ingest chaos run (seed {settings.seed}): {stream.get('payloads')} payloads of 4 providers about"
        f" {stream.get('people')} people, {stream.get('redelivered')} redelivered; {stream.get('sends')} requests"
        f" over {stream.get('seconds')}s; {settings.workers} workers x {settings.concurrency}, beat, gunicorn 2x4",
        f"responses: {_counts(report.responses.get('statuses', {}))};"
        f" connection errors: {_counts(report.responses.get('connection_errors', {})) or 'none'}",
        "",
        "faults injected:",
    ]
    lines += [f"  {incident.at:6.1f}s  {incident.what}" for incident in report.incidents]
    for crm, counts in report.crm_faults.items():
        calls = counts.get("calls", 0)
        failed = sum(n for kind, n in counts.items() if kind != "calls")
        kinds = _counts({kind: n for kind, n in counts.items() if kind != "calls"})
        lines.append(f"  {crm}: {failed} of {calls} calls failed on purpose"
                     f" ({100 * failed / calls if calls else 0:.0f}%): {kinds}")
    for title, snapshot in (("after the faults stopped and everything settled", first),
                            ("after `replay --status dead` and `deliveries retry --status dead`", final)):
        if not snapshot:
            continue
        lines += ["", f"{title}:",
                  f"  events: {_counts(snapshot['events'])}"
                  + (f"; dead by reason: {_counts(snapshot['dead_events_by_reason'])}"
                     if snapshot["dead_events_by_reason"] else ""),
                  f"  deliveries: {_counts(snapshot['deliveries'])}"
                  + (f"; dead by reason: {_counts(snapshot['dead_deliveries_by_reason'])}"
                     if snapshot["dead_deliveries_by_reason"] else ""),
                  f"  events processed more than once (a worker died, or a redelivered message):"
                  f" {snapshot['events_processed_more_than_once']}; delivery retries: {snapshot['delivery_retries']};"
                  f" redeliveries counted on the first event: {snapshot['redeliveries_counted']}"]
    lines += [f"  operator: {line}" for line in report.operator]
    lines += ["", "invariants:"]
    lines += [f"  {'PASS' if check.passed else 'FAIL <<<<'}  {check.name}: {check.detail}" for check in report.checks]
    lines += ["", f"{'ALL INVARIANTS HOLD' if report.passed else 'INVARIANTS VIOLATED'} ({report.seconds:.0f}s)"]
    return "\n".join(lines)


def _counts(counts: dict) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(counts.items(), key=lambda item: str(item[0])))
