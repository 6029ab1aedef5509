"""Reading a CRM's 2xx and quoting its bodies (crm_sync.destinations.http): an answer that is not the call's is a
transient `crm_answer` error saying which call answered what, and a quote never decodes a whole body."""
from __future__ import annotations

import httpx
import pytest

from crm_sync.destinations.base import TransientError
from crm_sync.destinations.http import VendorApi, answer_object, error_for_status


def response(status: int, content: bytes, method: str = "POST", content_type: str = "application/json"
             ) -> httpx.Response:
    return httpx.Response(status, content=content, headers={"content-type": content_type},
                          request=httpx.Request(method, "https://crm.example/api/things"))


@pytest.mark.parametrize(("content", "found"), [
    (b"", "an empty body"), (b"<html>Please log in</html>", "a body that is not JSON"),
    (b"\xff\xfe\xfa bad \x80", "a body that is not JSON"), (b"[]", "JSON an array where an object was expected"),
    (b'"ok"', "JSON a string where an object was expected"), (b"null", "JSON null where an object was expected")],
    ids=["empty", "html", "not-utf8", "array", "string", "null"])
def test_a_2xx_that_is_not_the_calls_answer_is_a_transient_answer_error_naming_the_call(content, found):
    with pytest.raises(TransientError) as caught:
        answer_object(response(200, content), "crm POST /api/things")

    assert caught.value.reason == "crm_answer"
    assert caught.value.message.startswith(f"crm POST /api/things: answered HTTP 200 with {found}")


def test_an_unreadable_answer_to_a_write_is_an_unknown_outcome():
    with pytest.raises(TransientError) as caught:
        answer_object(response(201, b"<html/>", "POST", "text/html"), "crm POST /api/things")

    assert caught.value.outcome_unknown


def test_an_unreadable_answer_to_a_read_is_no_unknown_outcome():
    with pytest.raises(TransientError) as caught:
        answer_object(response(200, b"<html/>", "GET", "text/html"), "crm GET /api/things")

    assert not caught.value.outcome_unknown


def test_an_answer_error_quotes_a_short_excerpt_of_the_body():
    with pytest.raises(TransientError) as caught:
        answer_object(response(200, b"<html>" + b"x" * 100_000 + b"</html>", content_type="text/html"), "crm")

    assert "<html>xxx" in caught.value.message and len(caught.value.message) < 500


def test_a_failed_status_quotes_the_body_without_decoding_all_of_it(monkeypatch):
    def decoded_whole(self):
        raise AssertionError("the whole body was decoded to quote 300 characters of it")
    monkeypatch.setattr(httpx.Response, "text", property(decoded_whole))

    error = error_for_status(response(500, b"<html>" + b"x" * 1_000_000, content_type="text/html"), "crm POST /x")

    assert error.message == "crm POST /x: HTTP 500: <html>" + "x" * 294


def test_secrets_given_to_the_api_are_masked_in_its_error_messages():
    def echoes_the_url(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"<html>bad gateway for {request.url}</html>")
    api = VendorApi(httpx.Client(transport=httpx.MockTransport(echoes_the_url)), "crm",
                    "https://crm.example/rest/1/s3cretcode/", secrets=["s3cretcode"])

    with pytest.raises(TransientError) as caught:
        api.request("POST", "/crm.contact.add")

    assert "s3cretcode" not in caught.value.message and "/rest/1/<secret>/" in caught.value.message
