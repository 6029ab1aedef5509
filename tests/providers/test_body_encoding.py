"""JSON bodies are UTF-8 (RFC 8259 section 8.1), and every provider that reads JSON reads it through RawRequest.json:
a body in another encoding is a parse error naming UTF-8 and the first byte that is not, never read after a guess at
its encoding; a leading UTF-8 byte order mark, which the RFC lets a parser ignore, is ignored.

Parsing as the worker calls it, on real samples (no database), and one request through the app.
"""
from __future__ import annotations

import json

import pytest

from ingest.providers import ParseError, get_provider
from ingest.providers.base import RawRequest
from tests.conftest import GENERIC_TOKEN, payload
from tests.providers import livechat_support

BOM = b"\xef\xbb\xbf"
# A generic sender's lead, as a CRM form would post it.
GENERIC_LEAD = json.dumps({"type": "lead", "kind": "lead", "name": "Анна Смирнова", "email": "anna@example.ru",
                           "subject": "Угловой диван"}, ensure_ascii=False).encode()
SAMPLES = {
    "jivo": payload("jivo/chat_accepted_cyrillic_free_form_phone.json"),
    "livechat": livechat_support.signed("incoming_chat_cyrillic.json"),
    "rocketchat": payload("rocketchat/LivechatOfflineMessage.cyrillic.json"),
    "generic": GENERIC_LEAD,
}


def parsed(provider: str, body: bytes) -> list:
    request = RawRequest("POST", f"/hooks/{provider}-main", "", {"Content-Type": "application/json"}, body,
                         "application/json")
    return get_provider(provider).parse(request)


@pytest.mark.parametrize("provider", SAMPLES)
def test_a_utf8_byte_order_mark_is_ignored(provider):
    assert parsed(provider, BOM + SAMPLES[provider]) == parsed(provider, SAMPLES[provider])


@pytest.mark.parametrize("provider", SAMPLES)
def test_a_utf16_body_is_refused_as_not_utf8_naming_its_byte_order_mark(provider):
    utf16 = SAMPLES[provider].decode("utf-8").encode("utf-16")  # Python writes the mark, FF FE, first
    with pytest.raises(ParseError) as refused:
        parsed(provider, utf16)
    assert str(refused.value) == ("the body is not UTF-8 text, as JSON must be (RFC 8259): byte 0xFF at offset 0 "
                                  "(invalid start byte); it starts with a UTF-16 byte order mark")


def test_a_utf16_body_without_a_byte_order_mark_is_not_guessed_into_json():
    utf16 = GENERIC_LEAD.decode("utf-8").encode("utf-16-le")
    with pytest.raises(ParseError, match="^the body is not valid JSON: .* at line 1 column 2$"):
        parsed("generic", utf16)


def test_a_windows_1251_body_is_refused_at_its_first_cyrillic_byte():
    text = SAMPLES["jivo"].decode("utf-8")
    first_cyrillic = next(index for index, char in enumerate(text) if "а" <= char.lower() <= "я")
    body = text.encode("cp1251")
    with pytest.raises(ParseError, match=rf"byte 0x{body[first_cyrillic]:02X} at offset {first_cyrillic} "
                                         r"\(invalid (start|continuation) byte\)$"):
        parsed("jivo", body)


def test_the_offset_counts_a_byte_order_mark_too():
    latin1_name = "Zoë".encode("latin-1")  # 0xEB where UTF-8 wants two bytes
    body = BOM + GENERIC_LEAD.replace("Анна".encode(), latin1_name)
    with pytest.raises(ParseError, match=rf"byte 0xEB at offset {body.index(latin1_name) + 2} "):
        parsed("generic", body)


def test_a_utf16_request_is_stored_answered_and_ends_dead_with_the_reason(provider_harness):
    harness = provider_harness({"generic-main": {"provider": "generic", "token": GENERIC_TOKEN}})
    response = harness.client.post("/hooks/generic-main", data=GENERIC_LEAD.decode().encode("utf-16"),
                                   headers={"Authorization": f"Bearer {GENERIC_TOKEN}"})
    assert response.status_code == 200
    [event] = harness.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert event.error_message.startswith("the body is not UTF-8 text, as JSON must be (RFC 8259): byte 0xFF ")
