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
# Text longer than this keeps its start and its end (a traceback's last line names the error) around CUT_MARK.
# Every pattern below runs in time linear in the text, but a line that long is a bug or an attack, not information.
MAX_REDACTED_CHARS = 64 * 1024
_KEPT_TAIL_CHARS = 16 * 1024
CUT_MARK = "…[{} characters cut]…"

# Each log line of a request goes through these patterns with a User-Agent and a path the sender chose, so none of
# them may try a match from every position of a long run (quadratic) or read a run in more than one way
# (exponential): a match starts only where a run starts (lookbehind), and repeats are bounded or unambiguous. An
# email's local part is read whole, however long: RFC 5321's 64 characters bound a valid address, not what a sender
# writes, and an address too long to be valid is still that person's.
_LOCAL_PART = r"[\w.!#$%&'*+/=?^`{|}~-]"
# A local part may hold ' ` and { (o'brien@…), but one that starts with them is, in a log line, an address in quotes
# ('ivan@mail.ru', `…`, a Python set {'…'}), or in quotes after a key (email='…' in a repr): those stay outside the
# mask, so the quotes around it stay balanced (a rare address that really starts with one shows just that character).
# Every part is possessive (read once, never given back), so a run is still read in one pass from its start.
_OPENING = r"['`{]"
_NOT_OPENING = r"[\w.!#$%&*+/=?^|}~-]"
_EMAIL = re.compile(
    r"(?<!{lp})(?P<before>(?:{plain}*+(?<==)(?={opening}))?+{opening}*+)(?P<address>{lp}++@[\w-]+(?:\.[\w-]+)+)"
    .format(lp=_LOCAL_PART, plain=_NOT_OPENING, opening=_OPENING))
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
# A quoted value ends at its closing quote or, cut off (a truncated body, a cut line), at the end of the text. A
# backslash only ever starts an escape, so a run of them is read one way (an escape-or-any-character form read
# it in exponentially many ways, and 40 backslashes in a User-Agent cost seconds of CPU).
_QUOTED_TEXT = re.compile(
    r"""(?P<key>["']?\b(?:%s)["']?\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*(?P<closed>"|\Z)|'(?:[^'\\]|\\.)*(?P<closed_>'|\Z))"""
    % "|".join(TEXT_KEYS), re.IGNORECASE | re.DOTALL)
# pydantic's ValidationError repeats the rejected input: "[type=…, input_value=<anything>, input_type=…]"; pydantic
# shortens the input to about 50 characters, so a longer stretch is not its.
_PYDANTIC_INPUT = re.compile(r"input_value=.{0,500}?(?=, input_type=)", re.DOTALL)


def redact(text: str) -> str:
    """`text` with emails, phone numbers and message text replaced by <email>, <phone> and <text>."""
    if not text:
        return text
    if len(text) > MAX_REDACTED_CHARS:
        text = _shortened(text)
    if _MAY_HOLD_PERSONAL.search(text) is None:
        return text
    text = _PYDANTIC_INPUT.sub("input_value=" + TEXT_MASK, text)
    text = _QUOTED_TEXT.sub(_mask_quoted, text)
    text = _EMAIL.sub(r"\g<before>" + EMAIL_MASK, text)
    return _PHONE_CANDIDATE.sub(_mask_phone, text)


def _shortened(text: str) -> str:
    """The text's start and end, MAX_REDACTED_CHARS in all, with CUT_MARK saying how much is left out between."""
    head = MAX_REDACTED_CHARS - _KEPT_TAIL_CHARS
    return text[:head] + CUT_MARK.format(len(text) - MAX_REDACTED_CHARS) + text[-_KEPT_TAIL_CHARS:]


def _mask_quoted(match: re.Match[str]) -> str:
    closing = match.group("closed") or match.group("closed_") or ""  # "" when cut off
    return f"{match.group('key')}{match.group('value')[0]}{TEXT_MASK}{closing}"


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
    return [match.group("address") for match in _EMAIL.finditer(text)]


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
