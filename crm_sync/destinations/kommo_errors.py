"""What Kommo's (amoCRM's) failures mean for the delivery engine.

Kommo allows 7 requests a second. Beyond that it answers 429, and an integration that keeps going gets its IP
restricted (https://developers.kommo.com/docs/limitations): a 403. Kommo's authorization errors carry a code from its
error table (https://www.amocrm.com/developers/content/api/errors/): 110 wrong credentials, 111 captcha required,
112 user disabled, 101 no such account (all 401), 113 this IP is not on the account's whitelist (403). So a 403 with
one of those codes is a real refusal, and a 403 without one is the IP block: a pause of minutes for the whole
destination, not a dead delivery.
"""
from __future__ import annotations

import httpx

from crm_sync.destinations.base import DeliveryError, TransientError
from crm_sync.destinations.http import body_excerpt, json_or_none, retry_after_seconds

AUTH_ERROR_CODES = frozenset({"101", "110", "111", "112", "113"})
RATE_LIMIT_PAUSE = 1.0      # a 429 without Retry-After: the limit is per second
IP_BLOCK_PAUSE = 600.0      # Kommo does not say how long an IP block lasts; probing more often could prolong it


def classify(response: httpx.Response, what: str) -> DeliveryError | None:
    """Kommo's meaning of a failed call; None leaves it to the generic status rules (401 and coded 403s: auth)."""
    status = response.status_code
    if status == 429:
        return TransientError("rate_limit", f"{what}: HTTP 429: {body_excerpt(response)}",
                              retry_after_seconds(response) or RATE_LIMIT_PAUSE, 429)
    if status == 403 and error_code(response) not in AUTH_ERROR_CODES:
        return TransientError("rate_limit", f"{what}: HTTP 403 without an authorization error code, taken for "
                              f"Kommo's block of this IP after too many requests: {body_excerpt(response)}",
                              retry_after_seconds(response) or IP_BLOCK_PAUSE, 403)
    return None


def error_code(response: httpx.Response) -> str | None:
    """Kommo's error code, if the body has one: `error_code` (at the top or inside the older `response` envelope),
    or a problem+json `status` holding a Kommo code instead of the HTTP status."""
    body = json_or_none(response)
    if not isinstance(body, dict):
        return None
    envelope = body.get("response") if isinstance(body.get("response"), dict) else {}
    for value in (envelope.get("error_code"), body.get("error_code"), body.get("status")):
        if value not in (None, "") and str(value) != str(response.status_code):
            return str(value)
    return None
