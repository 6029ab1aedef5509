"""What every CRM record we write says, and how we recognise our own records again.

A note (or lead comment) is the interaction as a person reads it: what happened, where, the conversation. Its last
line is the marker `crm-ingest:<idempotency key>`, which is how a retry finds the note an earlier attempt wrote even
when that attempt's response was lost.
"""
from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

from crm_sync.destinations.base import ContactSnapshot, InteractionSnapshot

MARKER_PREFIX = "crm-ingest:"
_KIND_TITLES = {
    "chat": "Chat", "message": "Chat messages", "offline_message": "Offline message", "lead": "Lead",
    "call": "Call", "ticket": "Ticket", "contact_update": "Contact update", "note": "Note",
}
_NON_DIGITS = re.compile(r"\D+")


def marker(key: str) -> str:
    return f"{MARKER_PREFIX}{key}"


def has_marker(text: str | None, key: str) -> bool:
    """Whether a CRM text holds our marker, whatever HTML escaping or wrapping the CRM added."""
    if not text or not isinstance(text, str):
        return False
    plain = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return re.search(re.escape(marker(key)) + r"(?![\w:.-])", plain) is not None


def display_name(contact: ContactSnapshot) -> str:
    """The name a CRM shows for the person: never empty, because several CRMs require one."""
    joined = " ".join(part for part in (contact.first_name, contact.last_name) if part)
    return (contact.name or joined or next(iter(contact.emails), None) or next(iter(contact.phones), None)
            or f"Contact #{contact.contact_id}")


def first_and_last(contact: ContactSnapshot) -> tuple[str | None, str | None]:
    if contact.first_name or contact.last_name:
        return contact.first_name, contact.last_name
    if contact.name:
        first, _, last = contact.name.strip().partition(" ")
        return first or None, last.strip() or None
    return None, None


def phone_digits(value: str) -> str:
    return _NON_DIGITS.sub("", value)


def same_phone(a: str, b: str) -> bool:
    """Equal digits, or equal last ten digits when both have ten or more (`+7 916…` written as `8 916…`)."""
    x, y = phone_digits(a), phone_digits(b)
    if not x or not y:
        return False
    return x == y or (len(x) >= 10 and len(y) >= 10 and x[-10:] == y[-10:])


def same_email(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def matches_person(contact: ContactSnapshot, emails: list[str], phones: list[str]) -> bool:
    """Whether a CRM record with these emails and phones is this person (any shared email or phone)."""
    return (any(same_email(mine, theirs) for mine in contact.emails for theirs in emails)
            or any(same_phone(mine, theirs) for mine in contact.phones for theirs in phones))


def interaction_title(interaction: InteractionSnapshot, contact: ContactSnapshot) -> str:
    lead_title = (interaction.lead or {}).get("title")
    kind = _KIND_TITLES.get(interaction.kind, interaction.kind.replace("_", " ").capitalize())
    subject = lead_title or interaction.subject
    title = f"{kind} ({interaction.provider})"
    return f"{title}: {subject}" if subject else f"{title}: {display_name(contact)}"


def interaction_lines(interaction: InteractionSnapshot, contact: ContactSnapshot) -> tuple[list[str], list[str]]:
    """(summary lines, transcript lines) in plain text."""
    summary = [interaction_title(interaction, contact)]
    facts: list[tuple[str, Any]] = [
        ("When", _when(interaction.occurred_at)), ("State", interaction.state), ("Subject", interaction.subject),
        ("Source", f"{interaction.provider} / {interaction.source}"), ("Conversation", interaction.conversation_id),
        ("Page", interaction.page_url), ("Tags", ", ".join(interaction.tags)),
        ("UTM", ", ".join(f"{k}={v}" for k, v in sorted(interaction.utm.items()))),
    ]
    lead = interaction.lead or {}
    facts += [("Lead", lead.get("external_id")), ("Visit", lead.get("visit")), ("Text", lead.get("text"))]
    facts += [(f"Lead {key}", value) for key, value in sorted((lead.get("data") or {}).items())]
    summary += [f"{label}: {value}" for label, value in facts if value not in (None, "")]
    transcript = [_message_line(message) for message in interaction.transcript]
    return summary, [line for line in transcript if line]


def note_text(interaction: InteractionSnapshot, contact: ContactSnapshot, key: str, max_chars: int = 60_000) -> str:
    summary, transcript = interaction_lines(interaction, contact)
    body = _fit(summary, transcript, max_chars - len(marker(key)) - 2, "\n")
    return f"{body}\n\n{marker(key)}"


def note_html(interaction: InteractionSnapshot, contact: ContactSnapshot, key: str, max_chars: int = 60_000) -> str:
    summary, transcript = interaction_lines(interaction, contact)
    escaped_summary = [html.escape(line) for line in summary]
    escaped_summary[0] = f"<b>{escaped_summary[0]}</b>"
    body = _fit(escaped_summary, [html.escape(line) for line in transcript], max_chars - 200, "<br>")
    return f"<p>{body}</p><p>{html.escape(marker(key))}</p>"


def _fit(summary: list[str], transcript: list[str], budget: int, separator: str) -> str:
    """Summary and as much of the transcript as fits, dropping the oldest messages first."""
    head = separator.join(summary)[:budget]
    kept: list[str] = []
    used = len(head) + 2 * len(separator)
    for line in reversed(transcript):
        if used + len(line) + len(separator) > budget:
            break
        kept.insert(0, line)
        used += len(line) + len(separator)
    dropped = len(transcript) - len(kept)
    if dropped:
        kept.insert(0, f"… {dropped} earlier message(s) not shown")
    return separator.join([head, "", *kept]) if kept else head


def _message_line(message: dict[str, Any]) -> str:
    text = str(message.get("text") or "").strip()
    if not text:
        return ""
    author = message.get("author_name") or message.get("author") or "?"
    when = _when(message.get("at"))
    return f"[{when}] {author}: {text}" if when else f"{author}: {text}"


def _when(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value) if value else None
