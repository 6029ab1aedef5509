"""RawRequest: the request as received, and what providers read from it."""
from __future__ import annotations

import pytest

from ingest.providers.base import ParseError, RawRequest


def raw(body: bytes) -> RawRequest:
    return RawRequest(method="POST", path="/hooks/any", query_string="", headers={}, body=body,
                      content_type="application/json")


def test_the_body_is_parsed_once_however_often_a_provider_reads_it():
    request = raw(b'{"event_name": "chat_accepted", "chat_id": 1}')
    assert request.json_object() is request.json()
    assert request.json() == {"event_name": "chat_accepted", "chat_id": 1}


def test_a_body_that_is_not_json_fails_every_read_with_its_reason():
    request = raw(b'{"event_name": ')
    for _ in range(2):
        with pytest.raises(ParseError, match="not valid JSON"):
            request.json()


def test_a_body_nesting_deeper_than_the_parser_goes_is_a_parse_error_not_a_crash():
    with pytest.raises(ParseError, match="nests deeper"):
        raw(b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}").json()


def test_query_parameters_and_form_fields_are_parsed_once_however_often_they_are_read():
    request = RawRequest(method="POST", path="/hooks/any", query_string="action=lead&phone=%2B7916", headers={},
                         body=b"name=Ivan&name=Boris", content_type="application/x-www-form-urlencoded")
    assert request.query() is request.query() and request.form() is request.form()
    assert request.query() == {"action": "lead", "phone": "+7916"} and request.form() == {"name": "Ivan"}


def _counted_reading(request: RawRequest) -> dict:
    _counted_reading.calls += 1
    return {"body": request.json()}


def test_what_a_provider_derives_from_a_request_is_worked_out_once():
    _counted_reading.calls = 0
    request = raw(b'{"chat_id": 1}')
    assert request.derived(_counted_reading) is request.derived(_counted_reading)
    assert _counted_reading.calls == 1


def test_a_derivation_that_failed_is_tried_again_not_kept():
    request = raw(b"not json")
    for _ in range(2):
        with pytest.raises(ParseError):
            request.derived(_counted_reading)


@pytest.mark.parametrize("body, named", [(b"null", "null"), (b"[1, 2]", "an array"), (b'"text"', "text"),
                                         (b"42", "a number"), (b"true", "true")])
def test_a_body_that_is_json_but_not_an_object_is_named_in_jsons_words(body, named):
    with pytest.raises(ParseError, match=rf"^the body is JSON but not an object \(got {named}\)$"):
        raw(body).json_object()
