"""Which Jivo events exist and what each one is, by its `event_name`."""
from __future__ import annotations

# Channel webhooks ("Integration settings for developers" of a channel).
CARD_EVENTS = frozenset({"chat_accepted", "chat_updated"})        # Jivo shows our reply to the agent
CHAT_EVENTS = CARD_EVENTS | {"chat_assigned"}                      # chat_assigned: legacy, still sent by old setups
CHANNEL_EVENTS = CHAT_EVENTS | {
    "chat_finished", "offline_message", "call_event", "client_updated", "client_attribute_updated",
}

# CRM webhooks ("CRM settings > CRM Webhooks"): the client card itself changed.
CRM_CLIENT_EVENTS = frozenset({
    "assigned_agent_to_client", "created_client", "deleted_client", "updated_client", "changed_client_company",
    "changed_client_blacklist", "updated_client_contacts",
})

# CRM webhooks about the CRM's own set-up or its deals and tasks: they name a client at most by id.
CRM_OTHER_EVENTS = frozenset({
    "created_pipeline", "updated_pipeline", "deleted_pipeline",
    "created_status", "updated_status", "deleted_status", "reordered_status", "assigned_status",
    "changed_require_update_of_status",
    "created_client_tag", "updated_client_tag", "deleted_client_tag", "merged_client_tag", "merged_tag",
    "changed_administrator_only_client_tag",
    "created_deal", "updated_deal", "deleted_deal",
    "created_task", "deleted_task", "updated_task", "completed_task", "fired_task",
    "created_organization",
})

KNOWN_EVENTS = CHANNEL_EVENTS | CRM_CLIENT_EVENTS | CRM_OTHER_EVENTS


def crm_category(event_name: str) -> str:
    """What a CRM event is about, for the reason an ignored event is kept with."""
    for word in ("pipeline", "status", "tag", "deal", "task", "organization"):
        if f"_{word}_" in f"_{event_name}_":
            return word
    return "crm"
