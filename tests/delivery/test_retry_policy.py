"""RetryPolicy: how long a failed delivery waits (plain functions, no database)."""
from __future__ import annotations

import pytest

from crm_sync.delivery.retry import RetryPolicy

SAMPLES = 500


def policy(initial: float = 2.0, cap: float = 900.0) -> RetryPolicy:
    return RetryPolicy(max_attempts=8, max_age_seconds=86_400, initial_seconds=initial, max_seconds=cap)


def waits(attempts: int, **kwargs) -> list[float]:
    retry = policy(**kwargs)
    return [retry.delay(attempts) for _ in range(SAMPLES)]


@pytest.mark.parametrize(("attempts", "window"), [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0)])
def test_a_retry_waits_within_the_second_half_of_its_doubling_window(attempts, window):
    drawn = waits(attempts)
    assert min(drawn) >= window / 2 and max(drawn) <= window


def test_a_retry_never_comes_back_at_once():
    assert min(waits(1, initial=2.0)) >= 1.0


def test_the_window_stops_growing_at_retry_max_seconds():
    drawn = waits(20, initial=2.0, cap=60.0)
    assert min(drawn) >= 30.0 and max(drawn) <= 60.0


def test_the_waits_are_spread_so_that_failures_together_do_not_retry_together():
    assert len({round(wait, 3) for wait in waits(3)}) > SAMPLES / 2


def test_a_longer_retry_after_than_the_backoff_is_waited_in_full():
    assert policy().delay(1, retry_after=120.0) == 120.0


def test_a_shorter_retry_after_than_the_backoff_does_not_shorten_it():
    assert policy().delay(3, retry_after=0.5) >= 4.0


def test_a_not_now_without_a_delay_waits_longer_the_longer_the_round_has_waited():
    early, late = policy().not_now_delay(1, waited_seconds=0.0), policy().not_now_delay(1, waited_seconds=60.0)
    assert 1.0 <= early <= 2.0 and 16.0 <= late <= 32.0   # 60 s: the window of 2 s doubled four times
