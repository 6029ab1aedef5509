"""What a sender chooses (User-Agent, path) reaches a log line cut short, and the redaction's patterns read any text
in one pass: bounded repeats that start only where a run starts, and one reading of each character."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config

from ingest.logs import CUT, MAX_REQUEST_FIELD_CHARS
from ingest.redaction import CUT_MARK, MAX_REDACTED_CHARS, emails_in, redact
from workers.gunicorn_logger import GunicornLogger


def access_line(environ: dict, log_lines) -> dict:
    read = log_lines("json")
    config = Config()
    config.set("accesslog", "-")
    GunicornLogger(config).access(SimpleNamespace(status="404 NOT FOUND", sent=0), None, environ,
                                  timedelta(milliseconds=1))
    [line] = [line for line in read() if line["logger"] == "gunicorn.access"]
    return line


def test_a_long_user_agent_is_cut_in_the_access_line(log_lines):
    line = access_line({"REQUEST_METHOD": "GET", "PATH_INFO": "/nothing", "HTTP_USER_AGENT": "a" * 8000 + ":"},
                       log_lines)

    assert line["user_agent"] == "a" * MAX_REQUEST_FIELD_CHARS + CUT


def test_a_long_path_is_cut_in_the_access_line(log_lines):
    line = access_line({"REQUEST_METHOD": "GET", "PATH_INFO": "/" + "p" * 8000}, log_lines)

    assert line["path"] == ("/" + "p" * 8000)[:MAX_REQUEST_FIELD_CHARS] + CUT


def test_an_email_with_a_local_part_of_64_characters_is_found():
    assert emails_in(f"from {'a' * 64}@example.com") == [f"{'a' * 64}@example.com"]


def test_a_local_part_longer_than_64_characters_is_read_whole():
    """Too long to be a valid address, but still the person's: redaction masks it, `forget` finds it."""
    assert emails_in("from " + "a" * 65 + "@example.com") == ["a" * 65 + "@example.com"]
    assert redact("from " + "a" * 300 + "@example.com") == "from <email>"


def test_a_long_run_without_an_at_sign_is_read_once_not_from_each_of_its_characters():
    """A match never restarts inside a run: one that did read a megabyte run ~10^12 times (the suite's timeout),
    and a long User-Agent cost seconds of CPU per line."""
    assert emails_in("a" * 1_000_000 + " @example.com") == []


def test_a_long_run_of_quotes_and_keys_is_read_once_not_from_each_of_its_characters():
    """Quotes and `key=` before an address stay outside its mask; reading them gives nothing back to try again."""
    assert emails_in("'" * 1_000_000 + " @example.com") == []
    assert emails_in("='" * 500_000 + " @example.com") == []
    assert emails_in("a='" * 333_333 + " @example.com") == []


def test_quoted_text_cut_off_before_its_closing_quote_is_masked():
    """A backslash only starts an escape: a run of them is read one way, not in exponentially many."""
    assert redact('failed: {"text": "call me at home, ' + "\\" * 20) == 'failed: {"text": "<text>'


def test_a_very_long_text_keeps_its_start_and_its_end_around_a_cut_mark():
    text = "start " + "x" * (2 * MAX_REDACTED_CHARS) + " ValueError: the end"

    redacted = redact(text)

    assert redacted.startswith("start x") and redacted.endswith("x ValueError: the end")
    assert CUT_MARK.format(len(text) - MAX_REDACTED_CHARS) in redacted
    assert len(redacted) == MAX_REDACTED_CHARS + len(CUT_MARK.format(len(text) - MAX_REDACTED_CHARS))


def test_pydantic_input_is_masked_only_as_far_as_pydantic_writes_it():
    """pydantic shortens the input it echoes to about 50 characters; the pattern looks no further than 500."""
    assert redact("[type=string_type, input_value=" + "z" * 40 + ", input_type=dict]") == \
        "[type=string_type, input_value=<text>, input_type=dict]"
    assert "input_value=<text>" not in redact("input_value=" + "z" * 501 + ", input_type=dict")
