"""Legacy LiveChat v2 webhooks (tests/payloads/livechat/legacy_*) → canonical records. Pure parsing: no database.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from crm_sync.model import ConversationState, InteractionKind, ProviderIdentity
from ingest.providers.base import IgnoreEvent
from tests.conftest import payload
from tests.providers.livechat_support import provider, raw, record


def test_legacy_chat_started_opens_the_chat_with_visitor_and_transcript():
    started = record(payload("livechat/legacy_chat_started.json"))
    assert (started.interaction.state, started.interaction.conversation_id) == \
        (ConversationState.OPEN, "livechat:NX9F2KD8Q1")
    assert (started.person.name, started.person.phones) == ("Сергей", ["+7 (495) 123-45-67"])
    assert started.person.identities == [ProviderIdentity(kind="livechat.visitor_id", value="S1709630001.9c1e2f3a4b")]
    assert started.interaction.transcript[0].text == "Добрый вечер, подскажите по доставке в Казань"


def test_legacy_skipped_pre_chat_survey_leaves_no_answers():
    assert "pre_chat_survey" not in record(payload("livechat/legacy_chat_started.json")).interaction.extra


def test_legacy_chat_ended_closes_the_chat_with_pre_chat_survey_answers():
    ended = record(payload("livechat/legacy_chat_ended.json"))
    assert ended.interaction.state == ConversationState.CLOSED
    assert ended.interaction.occurred_at == datetime.fromtimestamp(1358939109, tz=timezone.utc)
    assert ended.interaction.extra["pre_chat_survey"]["What are your favourite music bands?"] == \
        "Deep Purple, Guns N' Roses"
    assert (ended.person.name, ended.person.emails) == ("Mary Brown", ["mary.brown@email.com"])
    assert ended.person.attributes == {"Customer ID": "POQ51023XZA"}


def test_legacy_supervisor_whispers_stay_out_of_the_transcript():
    transcript = record(payload("livechat/legacy_chat_ended.json")).interaction.transcript
    assert [(m.author, m.text) for m in transcript] == [("agent", "Hello"), ("visitor", "How are you?")]


def test_legacy_chat_changed_carries_the_tags_without_changing_the_state():
    changed = record(payload("livechat/legacy_chat_changed.json")).interaction
    assert (changed.state, changed.tags) == (None, ["sales", "support", "feedback"])


def test_legacy_visitor_queued_is_a_queued_chat_for_the_visitor():
    queued = record(payload("livechat/legacy_visitor_queued.json"))
    assert (queued.interaction.state, queued.person.emails) == (ConversationState.QUEUED, ["mary.brown@email.com"])


def test_legacy_ticket_created_is_a_ticket_for_the_requester():
    ticket = record(payload("livechat/legacy_ticket_created.json"))
    assert (ticket.interaction.kind, ticket.interaction.external_id, ticket.interaction.subject) == \
        (InteractionKind.TICKET, "CCWWM", "Welcome")
    assert (ticket.person.name, ticket.person.emails) == ("Mary Brown", ["mary.brown@email.com"])
    assert (ticket.interaction.agent.name, ticket.interaction.tags) == ("Gregory", ["support"])
    assert ticket.interaction.extra["source_chat_id"] == "NO4Y5FAERW"


def test_legacy_canned_response_change_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="canned_response_changed"):
        provider.parse(raw(payload("livechat/legacy_canned_response_changed.json")))
