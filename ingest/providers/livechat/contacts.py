"""Where LiveChat keeps contact data: the customer user, pre-chat form answers and session fields.

LiveChat's forms have `name` and `email` field types but no phone type: a phone is asked for with a free `question`
field whose label says so ("Phone", "Телефон"), and sites put contacts into session fields under keys of their own
choosing. Both are recognised by their label or key, and only when the value looks the part (an "@" for an e-mail,
a handful of digits for a phone), so "Company name" or "Order number" never becomes a contact.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from crm_sync.model import Person, ProviderIdentity
from ingest.providers.livechat.models import FormField

_EMAIL_LABEL = re.compile(r"e[-_ ]?mail|почт", re.IGNORECASE)
_PHONE_LABEL = re.compile(r"\b(?:tele)?phone|\btel\b|\bmobile\b|\bcell\b|whatsapp|телефон|\bтел\b|мобильн",
                          re.IGNORECASE)
_NAME_KEYS = frozenset({"name", "full_name", "fullname", "customer_name", "имя", "фио"})
_MIN_PHONE_DIGITS = 5


@dataclass
class PersonDraft:
    """A person assembled from several places; the first name found wins, every e-mail and phone is kept."""

    name: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    identities: list[ProviderIdentity] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)

    def add_name(self, name: str | None) -> None:
        self.name = self.name or name

    def add_email(self, email: str | None) -> None:
        if email:
            self.emails.append(email)

    def add_phone(self, phone: str | None) -> None:
        if phone:
            self.phones.append(phone)

    def add_identity(self, kind: str, value: str | None) -> None:
        if value:
            self.identities.append(ProviderIdentity(kind=kind, value=value))

    def add_contact(self, kind: str | None, value: str) -> None:
        {"name": self.add_name, "email": self.add_email, "phone": self.add_phone}.get(kind, _skip)(value)

    def build(self) -> Person:
        return Person(name=self.name, emails=self.emails, phones=self.phones, identities=self.identities,
                      attributes=self.attributes)


def _skip(_value: str) -> None:
    return None


def answer_text(form_field: FormField) -> str | None:
    """The answer as a person would read it: choice labels for radio/select/checkbox, None when unanswered."""
    if form_field.answers:
        chosen = [_choice_label(item) for item in form_field.answers if _was_chosen(item)]
        return ", ".join(label for label in chosen if label) or None
    return _choice_label(form_field.answer)


def _choice_label(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("label")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return (value.strip() or None) if isinstance(value, str) else None


def _was_chosen(item: Any) -> bool:
    """v3 lists only the chosen options; legacy v2 lists them all with `chosen: true|false`."""
    return not isinstance(item, dict) or item.get("chosen", True) is not False


def form_answers(fields: Iterable[FormField]) -> dict[str, str]:
    """Answered fields by label (unanswered ones left out), for the interaction's record of the form."""
    answers: dict[str, str] = {}
    for number, form_field in enumerate(fields, start=1):
        text = answer_text(form_field)
        if text is None:
            continue
        label = form_field.label or form_field.type or f"field {number}"
        key, repeat = label, 2
        while key in answers:
            key, repeat = f"{label} ({repeat})", repeat + 1
        answers[key] = text
    return answers


def add_form_contacts(draft: PersonDraft, fields: Iterable[FormField]) -> None:
    for form_field in fields:
        text = answer_text(form_field)
        if text:
            draft.add_contact(_form_field_kind(form_field, text), text)


def _form_field_kind(form_field: FormField, text: str) -> str | None:
    if form_field.type in ("name", "email", "phone"):
        return form_field.type
    return _contact_kind(form_field.label or "", text)


def add_custom_fields(draft: PersonDraft, session_fields: Iterable[dict]) -> None:
    """v3 session fields and v2 custom variables, as single-key objects: all become attributes, and the ones
    named like a contact (`email`, `phone`, `name`...) also become the person's contacts."""
    for pair in session_fields:
        for key, raw_value in pair.items():
            value = _choice_label(raw_value)
            if value is None:
                continue
            draft.attributes[str(key)] = value
            normalised = str(key).strip().lower().replace("-", "_").replace(" ", "_")
            kind = "name" if normalised in _NAME_KEYS else _contact_kind(normalised.replace("_", " "), value)
            draft.add_contact(kind, value)


def _contact_kind(label: str, value: str) -> str | None:
    if _EMAIL_LABEL.search(label) and "@" in value:
        return "email"
    if _PHONE_LABEL.search(label) and sum(ch.isdigit() for ch in value) >= _MIN_PHONE_DIGITS:
        return "phone"
    return None
