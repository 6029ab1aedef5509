"""Batch writes where one invalid item must not fail the others.

A CRM's batch endpoint (HubSpot's `batch/upsert` and `batch/create`) validates the whole batch first and refuses all
of it when one input is invalid, without saying which. Written again one by one, only that input fails.
"""
from __future__ import annotations

from typing import Callable, Hashable, TypeVar

from crm_sync.destinations.base import DeliveryError, PermanentError

Item = TypeVar("Item")
Key = TypeVar("Key", bound=Hashable)
Written = TypeVar("Written")


def write_isolating_invalid(items: list[Item], key: Callable[[Item], Key],
                            write_batch: Callable[[list[Item]], dict[Key, Written | DeliveryError]],
                            write_one: Callable[[Item], Written | DeliveryError]) -> dict[Key, Written | DeliveryError]:
    """What was written (or the error) per item's key: `write_batch(items)`, and when the CRM refuses that batch as
    invalid, `write_one` for each item. Any other error (auth, rate limit, an outage) is not about one item, so every
    item gets it and nothing is written twice."""
    try:
        return write_batch(items)
    except PermanentError as exc:
        if exc.reason != "validation" or len(items) < 2:
            return {key(item): exc for item in items}
    except DeliveryError as exc:
        return {key(item): exc for item in items}
    written: dict[Key, Written | DeliveryError] = {}
    for item in items:
        try:
            written[key(item)] = write_one(item)
        except DeliveryError as exc:
            written[key(item)] = exc
    return written
