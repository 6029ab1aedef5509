"""The ingress benchmark reports even and one-sided rounds apart (bench.spread)."""
from __future__ import annotations

from bench.spread import RoundFigures, busiest_share, by_spread, spread_lines


def test_the_busiest_share_is_the_largest_workers_part_of_the_cpu():
    assert busiest_share([1.0, 3.0]) == 0.75
    assert busiest_share([0.0, 0.0]) is None


def test_rounds_are_split_by_how_their_connections_spread():
    rounds = [RoundFigures(4000, 0.52), RoundFigures(5000, 0.60), RoundFigures(6000, 0.70),
              RoundFigures(3000, 0.80), RoundFigures(2000, 0.99)]
    assert by_spread(rounds) == {"even": {"median_rps": 5000, "rounds": 3},
                                 "one_sided": {"median_rps": 2000, "rounds": 1}}


def test_the_ratio_of_each_kind_of_round_is_hooks_over_hello():
    _, data = spread_lines({"hello": [RoundFigures(4000, 0.5), RoundFigures(2000, 1.0)],
                            "hooks": [RoundFigures(1000, 0.55), RoundFigures(1500, 0.95)]})
    assert data["ratio"] == {"even": 0.25, "one_sided": 0.75}


def test_a_kind_of_round_that_did_not_happen_has_no_ratio():
    lines, data = spread_lines({"hello": [RoundFigures(4000, 0.5)], "hooks": [RoundFigures(1000, 0.55)]})
    assert data["ratio"]["one_sided"] is None
    assert "one-sided no round" in lines[2]
