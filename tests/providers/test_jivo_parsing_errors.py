"""JivoChat bodies that cannot be parsed: an unknown event, or a body that is not a Jivo event, is a parse error
with the reason (to replay later). Pure parsing: no database.
"""
from __future__ import annotations

import pytest

from ingest.providers import ParseError
from tests.conftest import payload
from tests.providers.jivo_support import provider, request_of


def test_an_unknown_event_is_a_parse_error_to_replay_later():
    with pytest.raises(ParseError, match="unknown Jivo event 'chat_rated'"):
        provider.parse(request_of(payload("jivo/unknown_event.json")))


@pytest.mark.parametrize("body, reason", [
    (b"", "empty"), (b"event_name=chat_accepted", "not valid JSON"), (b"[1, 2]", "not an object"),
    (b'{"chat_id": 1}', "no event_name"), (b'{"event_name": 5}', "no event_name"),
    (b"{\"event_name\": \"\xc3\x28\"}", "not UTF-8"),
])
def test_a_body_that_is_not_a_jivo_event_is_a_parse_error_with_the_reason(body, reason):
    with pytest.raises(ParseError, match=reason):
        provider.parse(request_of(body))
