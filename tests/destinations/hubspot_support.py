"""What the HubSpot tests share: the bodies of the requests the fake was sent."""
from __future__ import annotations

import re


def sent(fake, pattern: str) -> list:
    """The bodies of the requests whose "METHOD /path" matches `pattern`, in order."""
    return [call.body for call in fake.calls if re.search(pattern, f"{call.method} {call.path}")]
