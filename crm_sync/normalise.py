"""Normal forms for matching people: E.164 phones (phonenumbers) and normalised emails (email-validator).

A value that does not parse is never dropped: it comes back unverified (`value is None`) with its original text, and
the contact store keeps it as an attribute that can never link two contacts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import phonenumbers
from email_validator import EmailNotValidError, validate_email

EMAIL = "email"
PHONE = "phone"
MAX_IDENTITY_LENGTH = 512


@dataclass(frozen=True)
class MatchingRules:
    """Everything normalisation depends on; built from the settings by `rules_from_settings`."""

    default_region: str = "RU"
    fold_local_part_case: bool = True
    strip_plus_tags: bool = False
    dotless_domains: frozenset[str] = field(default_factory=frozenset)


def rules_from_settings(settings) -> MatchingRules:
    email = settings.email_matching
    return MatchingRules(
        default_region=settings.default_phone_region,
        fold_local_part_case=email.fold_local_part_case,
        strip_plus_tags=email.strip_plus_tags,
        dotless_domains=frozenset(email.dotless_domains),
    )


@dataclass(frozen=True)
class Normalised:
    """One email or phone as written (`original`) and its matching key (`value`, None when it does not parse)."""

    kind: str
    original: str
    value: str | None

    @property
    def verified(self) -> bool:
        return self.value is not None


def normalise_email(text: str, rules: MatchingRules = MatchingRules()) -> Normalised:
    original = text.strip()
    try:
        parsed = validate_email(original, check_deliverability=False)
    except (EmailNotValidError, ValueError):
        return Normalised(EMAIL, original, None)
    local, domain = parsed.local_part, parsed.domain.lower()
    if rules.fold_local_part_case:
        local = local.lower()
    if rules.strip_plus_tags and "+" in local[1:]:
        local = local[: local.index("+", 1)]
    if domain in rules.dotless_domains:
        local = local.replace(".", "") or local
    return Normalised(EMAIL, original, f"{local}@{domain}")


def normalise_phone(text: str, default_region: str = "RU") -> Normalised:
    """E.164, with the extension kept as `;ext=NNN`; numbers without a country code are read in `default_region`."""
    original = text.strip()
    try:
        number = phonenumbers.parse(original, default_region)
    except phonenumbers.NumberParseException:
        return Normalised(PHONE, original, None)
    if not phonenumbers.is_valid_number(number):
        return Normalised(PHONE, original, None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Normalised(PHONE, original, f"{e164};ext={number.extension}" if number.extension else e164)


def normalise_identity_value(value: str) -> str | None:
    """A provider's own id, trimmed; None when it is empty or too long to be a key (then it is kept unverified)."""
    text = value.strip()
    return text if 0 < len(text) <= MAX_IDENTITY_LENGTH else None
