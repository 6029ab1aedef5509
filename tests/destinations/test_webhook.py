"""Generic webhook: the canonical contact and interaction, signed per the Standard Webhooks spec."""
from __future__ import annotations

import time

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from crm_sync.destinations.http import MAX_ANSWER_BYTES
from tests.destinations.builders import contact, deliver_until_done, delivery
from tests.destinations.conftest import WEBHOOK_SECRET
from tests.destinations.standard_webhooks import expected_signature
from tests.fakes.base import Fault
from tests.fakes.webhook import WebhookReceiver


def test_the_signature_verifies_per_the_standard_webhooks_spec(webhook, receiver):
    webhook.deliver(delivery(key="k-1"))

    (request,) = receiver.received
    assert request.header("webhook-id") == "k-1"
    assert abs(int(request.header("webhook-timestamp")) - time.time()) < 300
    signatures = request.header("webhook-signature").split(" ")
    assert expected_signature(WEBHOOK_SECRET, "k-1", request.header("webhook-timestamp"), request.body) in signatures


def test_a_tampered_body_does_not_verify(webhook, receiver):
    webhook.deliver(delivery(key="k-1"))

    (request,) = receiver.received
    tampered = request.body.replace(b"Ivan", b"Ivon")
    assert expected_signature(WEBHOOK_SECRET, "k-1", request.header("webhook-timestamp"), tampered) \
        != request.header("webhook-signature")


def test_the_body_is_the_canonical_contact_and_interaction(webhook, receiver):
    webhook.deliver(delivery(key="k-1"))

    body = receiver.deliveries["k-1"]
    assert receiver.received[0].header("content-type") == "application/json"
    assert (body["type"], body["timestamp"]) == ("interaction.recorded", "2024-05-06T10:30:00Z")
    assert body["data"]["idempotency_key"] == "k-1"
    assert body["data"]["contact"] | {"id": 1, "emails": ["ivan@example.com"], "phones": ["+79161234567"]} \
        == body["data"]["contact"]
    interaction = body["data"]["interaction"]
    assert (interaction["kind"], interaction["provider"], interaction["id"]) == ("chat", "jivo", 10)
    assert interaction["transcript"][0] == {"author": "visitor", "author_name": "Ivan", "at": "2024-05-06T10:30:00Z",
                                            "text": "Hello, is the blue one in stock?"}


def test_a_contact_update_without_an_interaction_says_so(webhook, receiver):
    webhook.deliver(delivery(key="c-1", with_interaction=False))

    body = receiver.deliveries["c-1"]
    assert (body["type"], body["data"]["interaction"]) == ("contact.updated", None)


def test_every_attempt_carries_the_same_webhook_id_so_the_receiver_keeps_one(webhook, receiver):
    receiver.faults.script(Fault.after_write(then="500"))

    with pytest.raises(TransientError):
        webhook.deliver(delivery(key="k-1"))
    deliver_until_done(webhook, delivery(key="k-1", attempt=2))

    assert [r.header("webhook-id") for r in receiver.received] == ["k-1", "k-1"]
    assert list(receiver.deliveries) == ["k-1"]


def test_the_receiver_may_link_its_own_record(webhook, receiver):
    receiver.reply = {"record_id": "R-77", "record_url": "https://crm.internal/r/77"}

    result = webhook.deliver(delivery())

    assert (result.contact_record_id, result.record_url, result.api_calls) == ("R-77", "https://crm.internal/r/77", 1)


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", " JavaScript:alert(1)", "data:text/html,<b>x</b>",
                                 "crm.internal/r/77"])
def test_a_record_url_that_is_not_a_web_page_is_not_linked(webhook, receiver, url):
    receiver.reply = {"record_id": "R-78", "record_url": url}

    result = webhook.deliver(delivery())

    assert (result.contact_record_id, result.record_url) == ("R-78", None)


@pytest.mark.parametrize("record_id", [0, False, {"ok": True}, [1, 2], "", "r" * 600, "R\n1"],
                         ids=["zero", "false", "object", "list", "empty", "too-long", "control-character"])
def test_a_record_id_that_is_no_record_id_is_not_linked(webhook, receiver, record_id):
    receiver.reply = {"record_id": record_id, "interaction_record_id": record_id}

    result = webhook.deliver(delivery())

    assert (result.contact_record_id, result.interaction_record_id) == (None, None)


def test_a_record_id_that_is_no_record_id_leaves_the_link_we_had(webhook, receiver):
    receiver.reply = {"record_id": False}

    result = webhook.deliver(delivery(contact(record_id="R-77")))

    assert result.contact_record_id == "R-77"


def test_the_configured_url_is_posted_to_exactly_as_written(build_destination):
    with WebhookReceiver(path="/hooks/crm/").running() as receiver:   # serves the trailing slash only
        webhook = build_destination("webhook", url=f"{receiver.url}/hooks/crm/?tenant=7", secret=WEBHOOK_SECRET)

        webhook.deliver(delivery(key="k-1"))

    (request,) = receiver.received
    assert (request.path, request.query) == ("/hooks/crm/", {"tenant": ["7"]})


def test_rate_limit_with_retry_after_is_transient_with_that_delay(webhook, receiver):
    receiver.faults.script(Fault.rate_limit(retry_after=30))

    with pytest.raises(TransientError) as caught:
        webhook.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 30)


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.timeout(), Fault.after_write(then="drop")],
                         ids=["5xx", "timeout", "dropped"])
def test_an_unavailable_receiver_is_a_transient_failure(webhook, receiver, fault):
    receiver.faults.script(fault)

    with pytest.raises(TransientError) as caught:
        webhook.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"


@pytest.mark.parametrize("status, reason", [(401, "auth"), (403, "auth"), (400, "validation"), (422, "validation"),
                                            (410, "endpoint_gone"), (301, "redirect")])
def test_a_refusal_is_a_permanent_failure_with_its_reason(webhook, receiver, status, reason):
    receiver.faults.script(Fault.respond(status, {"error": "no"}, headers={"Location": "https://elsewhere/"}))

    with pytest.raises(PermanentError) as caught:
        webhook.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == (reason, status)


@pytest.mark.parametrize("secret", ["not-base64!", "whsec_c2hvcnQ=", ""])
def test_a_secret_that_is_not_a_standard_webhooks_secret_is_rejected(secret, build_destination):
    with pytest.raises(ValueError, match="secret"):
        build_destination("webhook", url="https://example.internal/hook", secret=secret)



def test_an_answer_larger_than_any_crm_answer_is_not_read_whole(webhook, receiver):
    receiver.reply = {"record_id": "R-1", "padding": "x" * (MAX_ANSWER_BYTES + 1)}

    with pytest.raises(TransientError) as caught:
        webhook.deliver(delivery())

    assert caught.value.reason == "crm_answer" and caught.value.outcome_unknown
    assert f"answered more than {MAX_ANSWER_BYTES // 2**20} MB" in caught.value.message
