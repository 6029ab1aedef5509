"""Normal forms for matching people: E.164 phones (phonenumbers) and normalised emails (email-validator).

A value that does not parse is never dropped: it comes back unverified (`value is None`) with its original text, and
the contact store keeps it as an attribute that can never link two contacts.
"""
from __future__ import annotations

import unicodedata
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
    if not phonenumbers.is_valid_number(number) or not _written_in_digits(number, original) \
            or _placeholder(number):
        return Normalised(PHONE, original, None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Normalised(PHONE, original, f"{e164};ext={number.extension}" if number.extension else e164)


def _written_in_digits(number: phonenumbers.PhoneNumber, original: str) -> bool:
    """Whether the number's digits are in the text as digits. phonenumbers reads letters as a keypad's
    (1-800-FLOWERS): a visitor's "1O5-O2-O3" typed with the letter O would become a stranger's valid number and
    link the two. Letters elsewhere (an extension's "доб." or "ext") are no digits and do not matter."""
    digits = "".join(str(unicodedata.decimal(char)) for char in original if unicodedata.decimal(char, None) is not None)
    return str(number.national_number) in digits


def _placeholder(number: phonenumbers.PhoneNumber) -> bool:
    """A form mask's filler rather than a phone: the subscriber digits all one digit (+7 999 999-99-99,
    +7 900 000-00-00). Valid as numbers, they would make everybody who typed them one contact."""
    return len(set(str(number.national_number)[-7:])) == 1


def normalise_identity_value(value: str) -> str | None:
    """A provider's own id, trimmed; None when it is empty or too long to be a key (then it is kept unverified)."""
    text = value.strip()
    return text if 0 < len(text) <= MAX_IDENTITY_LENGTH else None
