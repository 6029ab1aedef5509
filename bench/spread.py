"""How each round's connections spread over the gunicorn workers, and what that did to each endpoint's throughput.

Every round opens fresh keep-alive connections, and the kernel's accept race decides which worker takes each one.
When one worker takes them all, its threads fight over one GIL while the other worker idles: a hello-world endpoint
then serves about half as much, a webhook that waits on the database much less than half. The ingress ratio is
therefore a mixture of two very different regimes, shown here separately.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

EVEN_AT_MOST = 0.75       # busiest worker's share of the workers' CPU: up to this, the round counts as even
ONE_SIDED_ABOVE = 0.90    # above this, one worker took (nearly) every connection


@dataclass(frozen=True)
class RoundFigures:
    requests_per_second: float
    busiest_share: float  # the busiest worker's share of the workers' CPU in the round (0.5: even for two)


def busiest_share(per_worker_cpu: list[float]) -> float | None:
    total = sum(per_worker_cpu)
    return max(per_worker_cpu) / total if total > 0 else None


def _median_rps(rounds: list[RoundFigures], keep) -> tuple[float | None, int]:
    chosen = [r.requests_per_second for r in rounds if keep(r.busiest_share)]
    return (statistics.median(chosen) if chosen else None), len(chosen)


def by_spread(rounds: list[RoundFigures]) -> dict[str, dict]:
    """{"even": {"median_rps", "rounds"}, "one_sided": {...}} for one endpoint."""
    even, even_count = _median_rps(rounds, lambda share: share <= EVEN_AT_MOST)
    one_sided, one_sided_count = _median_rps(rounds, lambda share: share > ONE_SIDED_ABOVE)
    return {"even": {"median_rps": even, "rounds": even_count},
            "one_sided": {"median_rps": one_sided, "rounds": one_sided_count}}


def spread_lines(rounds_by_endpoint: dict[str, list[RoundFigures]]) -> tuple[list[str], dict]:
    """The report's lines about the spread, and the same figures for the JSON output."""
    lines = ["busiest worker's share of the workers' CPU per round (50 %: even; 100 %: one worker took every"
             " connection),", "and the median req/s of the rounds that spread evenly (<= 75 %) and one-sided (> 90 %)"]
    data = {name: by_spread(rounds) for name, rounds in rounds_by_endpoint.items()}
    for name, rounds in rounds_by_endpoint.items():
        shares = sorted(r.busiest_share for r in rounds)
        if not shares:
            lines.append(f"  {name:<8} (no round measured)")
            continue
        split = data[name]
        lines.append(f"  {name:<8} {shares[0]:.0%} – {shares[-1]:.0%}, rounds above 90 %:"
                     f" {sum(share > ONE_SIDED_ABOVE for share in shares)} of {len(shares)};"
                     f" even {_rps(split['even'])}, one-sided {_rps(split['one_sided'])}")
    ratios = {kind: _ratio(data, kind) for kind in ("even", "one_sided")}
    if len(data) == 2:
        lines.append(f"  ratio    even rounds {_text(ratios['even'])}, one-sided rounds {_text(ratios['one_sided'])}")
    return lines, {"by_endpoint": data, "ratio": ratios}


def _ratio(data: dict, kind: str) -> float | None:
    values = [figures[kind]["median_rps"] for figures in data.values()]
    if len(values) != 2 or None in values or not values[0]:
        return None
    return values[1] / values[0]  # second endpoint over first: hooks over hello


def _rps(figures: dict) -> str:
    if figures["median_rps"] is None:
        return "no round"
    return f"{figures['median_rps']:.0f} req/s ({figures['rounds']} round{'s' if figures['rounds'] != 1 else ''})"


def _text(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
