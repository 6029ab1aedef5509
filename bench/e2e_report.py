"""The end-to-end benchmark's figures and its printed table, against the targets of issue 6."""
from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

from bench.ingress import _cpu_model, _load_average, _percentile, _verdict

if TYPE_CHECKING:
    from bench.e2e import Baseline, Phase

TARGET_RATIO = 0.5
TARGET_P50_MS = 250.0
TARGET_CALLS_PER_EVENT = 1.2
TARGET_WORKER_RSS_MB = 150.0
WEB_RSS_MB = 100.0   # issue 2's target for a web process, shown for reference


def phase_figures(phase: "Phase") -> dict:
    delivered = len(phase.arrivals)
    last_write = max(phase.arrivals.values(), default=phase.first_byte)
    latencies = sorted(phase.arrivals[email] - phase.acks[email] for email in phase.arrivals)
    span = last_write - phase.first_byte
    ingress_span = phase.last_ack - phase.first_byte
    return {
        "events": phase.events,
        "acknowledged": len(phase.acks),
        "statuses": {str(k): v for k, v in sorted(phase.statuses.items())},
        "connection_errors": phase.errors,
        "in_crm": delivered,
        "missing_from_crm": len(phase.acks) - delivered,
        "first_byte_to_last_crm_write_s": span,
        "events_per_second": delivered / span if span > 0 else 0.0,
        "acks_per_second": len(phase.acks) / ingress_span if ingress_span > 0 else 0.0,
        "offered_rate": phase.offered_rate,
        "ack_to_crm_p50_ms": _percentile(latencies, 0.50) * 1000,
        "ack_to_crm_p99_ms": _percentile(latencies, 0.99) * 1000,
        "ack_to_crm_max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "crm_calls": phase.calls,
        "crm_calls_per_event": phase.calls / delivered if delivered else 0.0,
        "cpu_seconds": phase.cpu.seconds,
        "cpu_ms_per_event": {part: 1000 * seconds / delivered for part, seconds in phase.cpu.seconds.items()}
        if delivered else {},
        "cpu_utilisation": phase.cpu.utilisation(),
    }


def baseline_figures(baseline: "Baseline") -> dict:
    return {"tasks": baseline.tasks, "seconds": baseline.seconds,
            "tasks_per_second": baseline.tasks / baseline.seconds if baseline.seconds else 0.0,
            "cpu_seconds": baseline.cpu.seconds, "cpu_utilisation": baseline.cpu.utilisation(),
            "worker_cpu_ms_per_task": 1000 * baseline.cpu.seconds["workers"] / baseline.tasks}


def report(args, baseline: "Baseline", burst: "Phase", paced: "Phase", memory: dict[str, list]) -> tuple[str, dict]:
    noop, flood, steady = baseline_figures(baseline), phase_figures(burst), phase_figures(paced)
    ratio = flood["events_per_second"] / noop["tasks_per_second"] if noop["tasks_per_second"] else 0.0
    peaks = {group: [(m.role, m.pid, m.peak_rss_kib / 1024) for m in processes] for group, processes in memory.items()}
    worker_peak = max((mb for _, _, mb in peaks["workers"]), default=0.0)
    web_peak = max((mb for _, _, mb in peaks["web"]), default=0.0)
    complete = flood["missing_from_crm"] == 0 and steady["missing_from_crm"] == 0
    lines = [
        f"crm-ingest end-to-end benchmark: 4 providers' sample payloads, each event a new person, to a fake HubSpot"
        f" (batching) on loopback{'' if not args.crm_rate else f', rate {args.crm_rate}'}",
        f"processes: gunicorn {args.web_workers}x{args.web_threads}; {args.workers} `crm-ingest worker` x"
        f" {args.concurrency} prefork (the no-op baseline the same)",
        f"machine: {os.cpu_count()} CPU(s) {_cpu_model()}, load average at the end {_load_average()},"
        f" Python {platform.python_version()}",
        "",
        f"{'figure':<44} {'measured':>16}   {'target':<14} verdict",
        _row("e2e throughput, first byte -> CRM write", f"{flood['events_per_second']:.1f} ev/s", "", ""),
        _row(f"  ({flood['in_crm']} events in {flood['first_byte_to_last_crm_write_s']:.1f} s;"
             f" ingress acked {flood['acks_per_second']:.0f}/s)", "", "", ""),
        _row("no-op Celery pipeline, same broker/workers", f"{noop['tasks_per_second']:.1f} tasks/s", "", ""),
        _row("ratio e2e / no-op", f"{ratio:.3f}", f">= {TARGET_RATIO}", _verdict(ratio >= TARGET_RATIO)),
        _row(f"ack -> CRM p50 at {args.rate:g} ev/s offered", f"{steady['ack_to_crm_p50_ms']:.0f} ms",
             f"<= {TARGET_P50_MS:g} ms", _verdict(steady["ack_to_crm_p50_ms"] <= TARGET_P50_MS and complete)),
        _row(f"ack -> CRM p99 (max {steady['ack_to_crm_max_ms']:.0f} ms)", f"{steady['ack_to_crm_p99_ms']:.0f} ms",
             "", ""),
        _row(f"  achieved: acks / CRM writes ({steady['in_crm']} events)",
             f"{steady['acks_per_second']:.1f} / {steady['events_per_second']:.1f}", "ev/s", ""),
        _row(f"CRM calls per event, burst of {flood['in_crm']} new",
             f"{flood['crm_calls_per_event']:.3f}", f"<= {TARGET_CALLS_PER_EVENT}",
             _verdict(flood["crm_calls_per_event"] <= TARGET_CALLS_PER_EVENT and complete)),
        _row(f"CRM calls per event at {args.rate:g} ev/s", f"{steady['crm_calls_per_event']:.3f}", "", ""),
        _row("peak RSS, largest worker process", f"{worker_peak:.1f} MB", f"<= {TARGET_WORKER_RSS_MB:g} MB",
             _verdict(worker_peak <= TARGET_WORKER_RSS_MB)),
        _row("peak RSS, largest web process", f"{web_peak:.1f} MB", f"({WEB_RSS_MB:g} MB, issue 2)", ""),
        _row("every acknowledged event reached the CRM", "yes" if complete else
             f"NO: {flood['missing_from_crm'] + steady['missing_from_crm']} missing", "", _verdict(complete)),
        "",
        "peak RSS (VmHWM): " + "; ".join(f"{group}: " + ", ".join(f"{role} {mb:.0f} MB" for role, _, mb in rows)
                                         for group, rows in peaks.items()),
        "",
        "CPU per phase (ms of CPU per event; share of one core; machine = share of all cores):",
    ]
    lines += _cpu_lines("burst", flood) + _cpu_lines("paced", steady)
    lines.append(f"  no-op   workers {noop['worker_cpu_ms_per_task']:.2f} ms/task; "
                 + ", ".join(f"{part} {share:.0%}" for part, share in noop["cpu_utilisation"].items()))
    data = {"noop": noop, "burst": flood, "paced": steady, "ratio": ratio, "peak_rss_mb": peaks,
            "targets": {"ratio": TARGET_RATIO, "p50_ms": TARGET_P50_MS, "calls_per_event": TARGET_CALLS_PER_EVENT,
                        "worker_rss_mb": TARGET_WORKER_RSS_MB},
            "settings": {k: v for k, v in vars(args).items() if k not in ("database_url", "redis_url", "json")}}
    return "\n".join(lines), data


def _row(label: str, measured: str, target: str, verdict: str) -> str:
    return f"{label:<44} {measured:>16}   {target:<14} {verdict}".rstrip()


def _cpu_lines(name: str, figures: dict) -> list[str]:
    per_event = figures["cpu_ms_per_event"]
    shares = figures["cpu_utilisation"]
    return [f"  {name:<7} " + ", ".join(f"{part} {per_event.get(part, 0):.1f} ms ({shares.get(part, 0):.0%})"
                                         for part in figures["cpu_seconds"])]
