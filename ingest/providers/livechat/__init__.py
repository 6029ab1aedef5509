"""LiveChat (text.com) webhooks: v3.x platform webhooks and the legacy v2 ones.

`provider` holds authentication, dedup keys and routing; `v3` and `legacy` turn each generation's payloads into
canonical records; `contacts` finds contact data in customers, forms and session fields; `models` reads the bodies.
"""
from ingest.providers.livechat.provider import LiveChatProvider, LiveChatSettings

__all__ = ["LiveChatProvider", "LiveChatSettings"]
