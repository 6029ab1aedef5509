"""Masking personal data in text meant for logs: emails, phone numbers and message text.

A safety net, not a guarantee: the code already avoids logging bodies, but exception messages (pydantic echoes the
input it rejected), CRM error bodies and third-party libraries do not. Matching errs on the side of masking: a long
bare number (13-digit millisecond timestamp) is masked like a phone.
"""
from __future__ import annotations

import re

EMAIL_MASK = "<email>"
PHONE_MASK = "<phone>"
TEXT_MASK = "<text>"

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits with the separators people write phones with; not glued to a word, a UUID group or a decimal.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+\-.])\+?\(?\d[\d ()\-.]{5,24}\d(?![\w\-])")
_DECIMAL = re.compile(r"\d+\.\d+")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS, MIN_BARE_PHONE_DIGITS = 7, 15, 10
# Every pattern here needs one of these (an email its @, quoted text and pydantic's input a ":" or "="), or a phone's
# seven digits: a text without them is returned as it is, the common case of a log line's own words and names.
_MAY_HOLD_PERSONAL = re.compile(r"[@:=]|\d(?:\D*\d){%d}" % (MIN_PHONE_DIGITS - 1))

# Keys whose values are what a person wrote (chat messages, lead comments) wherever they appear as key/value text:
# JSON ("text": "…"), Python reprs ('text': '…') and key=value pairs.
TEXT_KEYS = ("text", "message_text", "body", "comment", "comments", "transcript", "subject", "description", "note",
             "content", "question", "answer", "msg")
_QUOTED_TEXT = re.compile(
    r"""(?P<key>["']?\b(?:%s)["']?\s*[:=]\s*)(?P<quote>["'])(?:\\.|(?!(?P=quote)).)*(?P=quote)"""
    % "|".join(TEXT_KEYS), re.IGNORECASE | re.DOTALL)
# pydantic's ValidationError repeats the rejected input: "[type=…, input_value=<anything>, input_type=…]".
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=)", re.DOTALL)


def redact(text: str) -> str:
    """`text` with emails, phone numbers and message text replaced by <email>, <phone> and <text>."""
    if not text or _MAY_HOLD_PERSONAL.search(text) is None:
        return text
    text = _PYDANTIC_INPUT.sub("input_value=" + TEXT_MASK, text)
    text = _QUOTED_TEXT.sub(lambda m: f"{m.group('key')}{m.group('quote')}{TEXT_MASK}{m.group('quote')}", text)
    text = _EMAIL.sub(EMAIL_MASK, text)
    return _PHONE_CANDIDATE.sub(_mask_phone, text)


def _mask_phone(match: re.Match[str]) -> str:
    candidate = match.group(0)
    return PHONE_MASK if looks_like_phone(candidate) else candidate


def looks_like_phone(candidate: str) -> bool:
    digits = sum(char.isdigit() for char in candidate)
    if not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
        return False
    if _DECIMAL.fullmatch(candidate) or _IPV4.fullmatch(candidate) or _DATE.match(candidate):
        return False
    if candidate.count("(") != candidate.count(")"):  # "8000 (pid 2743": two numbers, not "(916) 123-45-67"
        return False
    if candidate.isdigit():
        return digits >= MIN_BARE_PHONE_DIGITS
    return True


def emails_in(text: str) -> list[str]:
    return _EMAIL.findall(text)


def phones_in(text: str) -> list[str]:
    return [match.group(0) for match in _PHONE_CANDIDATE.finditer(text) if looks_like_phone(match.group(0))]


def redact_value(key: str, value):
    """A log record's extra field: text keys masked whole, strings redacted (also inside dicts and lists)."""
    if key.lower() in TEXT_KEYS and isinstance(value, (str, list, tuple, dict)):
        return TEXT_MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value("", item) for item in value]
    return value
