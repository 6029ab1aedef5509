"""What a chaos run found: what was sent, what went wrong on purpose, how it ended, the invariants; and its printout."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.chaos_checks import Check
from bench.chaos_faults import Incident

if TYPE_CHECKING:
    from bench.chaos import ChaosSettings


@dataclass
class ChaosReport:
    settings: "ChaosSettings"
    stream: dict = field(default_factory=dict)
    responses: dict = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    crm_faults: dict[str, dict[str, int]] = field(default_factory=dict)
    first_round: dict = field(default_factory=dict)   # after the faults stopped and the pipeline went quiet
    operator: list[str] = field(default_factory=list)  # the replay commands run, and what they said
    final: dict = field(default_factory=dict)          # after the replay, quiet again
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    def data(self) -> dict:
        return {"settings": vars(self.settings), "stream": self.stream, "responses": self.responses,
                "incidents": [vars(incident) for incident in self.incidents], "crm_faults": self.crm_faults,
                "first_round": self.first_round, "operator": self.operator, "final": self.final,
                "checks": [vars(check) for check in self.checks], "seconds": self.seconds, "passed": self.passed}

    def text(self) -> str:
        settings, stream = self.settings, self.stream
        lines = [
            f"crm-ingest chaos run (seed {settings.seed}): {stream.get('payloads')} payloads of 4 providers about"
            f" {stream.get('people')} people, {stream.get('redelivered')} redelivered; {stream.get('sends')} requests"
            f" over {stream.get('seconds')}s; {settings.workers} workers x {settings.concurrency}, beat,"
            " gunicorn 2x4",
            f"responses: {_counts(self.responses.get('statuses', {}))}; connection errors:"
            f" {_counts(self.responses.get('connection_errors', {})) or 'none'}"
            f" ({self.responses.get('sent_again', 0)} unanswered request(s) sent again, as a provider retries)",
            "", "faults injected:",
            *(f"  {incident.at:6.1f}s  {incident.what}" for incident in self.incidents),
            *(_crm_line(crm, counts) for crm, counts in self.crm_faults.items()),
        ]
        lines += _snapshot_lines("after the faults stopped and everything settled", self.first_round)
        lines += _snapshot_lines("after `replay --status dead` and `deliveries retry --status dead`", self.final)
        lines += [f"  operator: {line}" for line in self.operator]
        lines += ["", "invariants:"]
        lines += [f"  {'PASS' if check.passed else 'FAIL <<<<'}  {check.name}: {check.detail}" for check in self.checks]
        lines += ["", f"{'ALL INVARIANTS HOLD' if self.passed else 'INVARIANTS VIOLATED'} ({self.seconds:.0f}s)"]
        return "\n".join(lines)


def _crm_line(crm: str, counts: dict[str, int]) -> str:
    calls = counts.get("calls", 0)
    failures = {kind: n for kind, n in counts.items() if kind != "calls"}
    failed = sum(failures.values())
    return (f"  {crm}: {failed} of {calls} calls failed on purpose ({100 * failed / calls if calls else 0:.0f}%):"
            f" {_counts(failures)}")


def _snapshot_lines(title: str, snapshot: dict) -> list[str]:
    if not snapshot:
        return []
    dead_events, dead_deliveries = snapshot["dead_events_by_reason"], snapshot["dead_deliveries_by_reason"]
    return ["", f"{title}:",
            f"  events: {_counts(snapshot['events'])}"
            + (f"; dead by reason: {_counts(dead_events)}" if dead_events else ""),
            f"  deliveries: {_counts(snapshot['deliveries'])}"
            + (f"; dead by reason: {_counts(dead_deliveries)}" if dead_deliveries else ""),
            f"  events processed more than once (a worker died, or a message came twice):"
            f" {snapshot['events_processed_more_than_once']}; delivery retries: {snapshot['delivery_retries']};"
            f" redeliveries counted on the first event: {snapshot['redeliveries_counted']}"]


def _counts(counts: dict) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(counts.items(), key=lambda item: str(item[0])))
