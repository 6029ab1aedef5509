"""The Standard Webhooks signature, written from the spec (https://www.standardwebhooks.com/), not from our module."""
from __future__ import annotations

import base64
import hashlib
import hmac


def expected_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """Computed from the spec's text, independently of the module: HMAC-SHA256 over "{id}.{timestamp}.{body}"."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, message_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
