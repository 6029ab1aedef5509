"""The contact card Jivo shows the agent who accepts a chat, built from our own store (never from a CRM).

Jivo renders the reply to `chat_accepted`/`chat_updated` in the agent's window: `contact_info` fills in what the
visitor has not typed, `custom_data` lines appear under "More about the visit", `crm_link` becomes an "Open in CRM"
button and `enable_assign` a "link to CRM card" button.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from crm_sync.model import InteractionKind

if TYPE_CHECKING:
    from crm_sync.contacts import ContactCard, InteractionSummary

OK: dict[str, Any] = {"result": "ok"}
# lookup_card returns at most this many interactions; a count that reaches it is shown as "N+".
CARD_INTERACTION_LIMIT = 20
CONVERSATION_KINDS = frozenset({InteractionKind.CHAT.value, InteractionKind.MESSAGE.value})


def card_reply(card: "ContactCard", current_conversation: str | None, primary: str | None = None) -> dict[str, Any]:
    """`{"result": "ok", "contact_info", "custom_data", "crm_link", "enable_assign"}` for a known contact.

    `crm_link` is the record in the `primary` destination when the contact has one there, else the first by name.
    """
    body: dict[str, Any] = dict(OK)
    contact_info = _present({"name": card.name, "phone": _display_phone(_first(card.phones)),
                             "email": _first(card.emails)})
    if contact_info:
        body["contact_info"] = contact_info
    earlier = [i for i in card.interactions if not current_conversation or i.conversation_id != current_conversation]
    links = sorted(card.crm_links.items(), key=lambda link: (link[0] != primary, link[0]))
    body["custom_data"] = [*_history(card, earlier), *_more_crm_links(links)]
    if links:
        body["crm_link"] = links[0][1]
    # The assign button sends `chat_assigned` with the CRM link: without a CRM record there is nothing to link to.
    body["enable_assign"] = bool(links)
    return body


def _history(card: "ContactCard", earlier: list["InteractionSummary"]) -> list[dict[str, str]]:
    conversations = {i.conversation_id for i in earlier if i.kind in CONVERSATION_KINDS and i.conversation_id}
    capped = len(card.interactions) >= CARD_INTERACTION_LIMIT
    lines = [{"title": "Previous chats", "content": f"{len(conversations)}{'+' if capped else ''}"}]
    lead = next((i for i in earlier if i.kind == InteractionKind.LEAD.value), None)
    if lead is not None:
        lines.append({"title": "Last lead", "content": _describe(lead, lead.subject or lead.external_id)})
    if earlier:
        latest = earlier[0]
        lines.append({"title": "Last contact", "content": _describe(latest, latest.subject)})
    return lines


def _more_crm_links(links: list[tuple[str, str]]) -> list[dict[str, str]]:
    """`crm_link` holds one link; a contact kept in several CRMs gets the others as linked lines."""
    if len(links) < 2:
        return []
    return [{"title": f"CRM: {name}", "content": url, "link": url} for name, url in links]


def _describe(interaction: "InteractionSummary", label: str | None) -> str:
    kind = interaction.kind.replace("_", " ")
    when = _when(interaction.occurred_at or interaction.updated_at)
    parts = [label, f"{kind} via {interaction.provider}", when]
    return ", ".join(part for part in parts if part)


def _when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%d %H:%M UTC")


def _display_phone(phone: str | None) -> str | None:
    """The store keeps RFC 3966 extensions (`+74951234567;ext=12`); the agent reads `+74951234567 ext. 12`."""
    return phone.replace(";ext=", " ext. ") if phone else None


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value}
