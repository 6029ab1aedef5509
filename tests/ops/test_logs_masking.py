"""Personal data in logs: emails, phones, message text, exception text and rejected input are masked by default,
a line with nothing personal is written as logged, and redaction can be turned off for debugging.
"""
from __future__ import annotations

import logging

import pytest

from ingest.redaction import emails_in, redact

PERSONAL = {"email": "ivan.petrov@example.com", "phone": "+7 916 123-45-67", "name": "Ivan"}


def test_emails_phones_and_message_text_are_masked(log_lines):
    read = log_lines("json")
    logging.getLogger("t").warning("write to %s or call %s: %s", PERSONAL["email"], PERSONAL["phone"],
                                   '{"text": "my name is Ivan, call me"}', extra={"text": "hello, it is Ivan"})

    line = read()[-1]

    assert line["message"] == 'write to <email> or call <phone>: {"text": "<text>"}'
    assert line["text"] == "<text>"


def test_a_bare_phone_number_is_masked_in_a_line_with_no_other_mark(log_lines):
    read = log_lines("json")
    logging.getLogger("t").warning("caller 89161234567 left no name", extra={"caller": "8 916 123 45 67"})

    line = read()[-1]

    assert (line["message"], line["caller"]) == ("caller <phone> left no name", "<phone>")


def test_a_line_with_nothing_personal_is_written_as_it_was_logged(log_lines):
    read = log_lines("json")
    logging.getLogger("t").warning("event stored, 3 of 12 in batch 4", extra={"source": "jivo-main", "attempt": 2})

    line = read()[-1]

    assert (line["message"], line["source"], line["attempt"]) == ("event stored, 3 of 12 in batch 4", "jivo-main", 2)


def test_exception_text_is_masked_too(log_lines):
    read = log_lines("json")
    try:
        raise ValueError(f"cannot parse {PERSONAL['email']}")
    except ValueError:
        logging.getLogger("t").exception("failed")

    line = read()[-1]

    assert "ValueError: cannot parse <email>" in line["exception"]
    assert PERSONAL["email"] not in str(line)


def test_a_validation_error_does_not_echo_the_input_it_rejected(log_lines):
    from pydantic import BaseModel, ValidationError

    class Visitor(BaseModel):
        name: str

    read = log_lines("json")
    try:
        Visitor(name={"first": "Ivan", "note": "lives at Tverskaya 1"})
    except ValidationError as exc:
        logging.getLogger("t").warning("cannot parse: %s", exc)

    message = read()[-1]["message"]
    assert "input_value=<text>" in message and "Tverskaya" not in message


def test_redaction_can_be_turned_off_for_debugging(log_lines):
    read = log_lines("json", redaction=False)
    logging.getLogger("t").info("write to %s", PERSONAL["email"])

    assert read()[-1]["message"] == f"write to {PERSONAL['email']}"


@pytest.mark.parametrize("quoted", ["'{}'", '"{}"', "<{}>", "`{}`"])
def test_quotes_around_an_email_stay_around_its_mask(quoted):
    assert redact("mail " + quoted.format("ivan@mail.ru")) == "mail " + quoted.format("<email>")


def test_an_apostrophe_inside_an_email_is_masked_with_it():
    assert redact("from o'brien@example.com") == "from <email>"
    assert redact("from 'o'brien@example.com'") == "from '<email>'"


def test_a_quoted_email_after_a_key_keeps_the_key_and_its_quotes():
    """How a Python repr writes a field: Agent(id='7', name=None, email='ivan@mail.ru')."""
    assert redact("Agent(id='7', name=None, email='ivan@mail.ru')") == "Agent(id='7', name=None, email='<email>')"


def test_an_email_in_a_python_set_keeps_its_braces_and_quotes():
    assert redact("forms={'ivan@mail.ru'}") == "forms={'<email>'}"


def test_an_email_found_between_quotes_is_the_address_alone():
    """What `forget` looks for in kept errors: the address, not the quote that opened it."""
    assert emails_in("cannot deliver to 'ivan@mail.ru'") == ["ivan@mail.ru"]
