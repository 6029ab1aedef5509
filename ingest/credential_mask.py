"""Credentials inside a stored request, masked wherever the request is shown.

A request is stored byte-exact so that it can be replayed, and some providers put their credential in the parts
kept: Roistat's `token` in the query string, LiveChat's `secret_key` in the JSON body. Whoever reads an event through
the admin API or `crm-ingest events show` needs the request, not the provider's password.
"""
from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

from ingest.providers import UnknownProvider, get_provider
from ingest.providers.base import ParseError, RawRequest

CREDENTIAL_MASK = "<credential>"
# Shorter values are left alone: masking every "1" of a body would hide the request, not a secret (no provider's
# credential is this short; ours are generated long).
MIN_MASKED_LENGTH = 4


def credentials_of(provider_name: str, request: RawRequest) -> list[str]:
    """The credential values the stored request carries, in every form they may be written in it."""
    try:
        values = get_provider(provider_name).credentials_in(request)
    except (UnknownProvider, ParseError, ValueError):  # a request its provider cannot read, or a retired provider
        return []
    forms = {form for value in values if len(value) >= MIN_MASKED_LENGTH
             for form in (value, quote_plus(value), quote(value, safe=""), json.dumps(value)[1:-1])}
    return sorted(forms, key=len, reverse=True)  # the longest first, so that no form is left half-masked


def masked_text(text: str | None, credentials: list[str]) -> str | None:
    for credential in credentials:
        if text:
            text = text.replace(credential, CREDENTIAL_MASK)
    return text


def masked_bytes(body: bytes, credentials: list[str]) -> bytes:
    for credential in credentials:
        body = body.replace(credential.encode("utf-8"), CREDENTIAL_MASK.encode("ascii"))
    return body
