"""Which HubSpot contact properties we may write: only those the record leaves empty.

A HubSpot contact is worked by salespeople: the name they typed ("Ivan (VIP)"), the number they call. Its
properties are single-valued, so writing ours over theirs would lose their value for good, while our contact store
keeps every email and phone anyway. We therefore write a property only where the record has none, as the Bitrix24,
Kommo and Pipedrive modules only add what a record lacks; a new record (no properties yet) gets everything.

Phones have two slots, `phone` and HubSpot's other standard phone property `mobilephone`: a phone of ours that the
record does not hold yet goes into whichever is empty. Emails have one writable slot, `email`: HubSpot's
`hs_additional_emails` is read-only through the API, so an email of ours that differs from the record's is not sent.
"""
from __future__ import annotations

from typing import Any, Mapping

from crm_sync.destinations.base import ContactSnapshot
from crm_sync.destinations.content import first_and_last, same_phone

PHONE_PROPERTIES = ("phone", "mobilephone")
# What a read must return to decide what to write (the record's id property is asked for separately).
READ_PROPERTIES = ("email", "firstname", "lastname", "company", *PHONE_PROPERTIES)


def missing_properties(contact: ContactSnapshot, record: Mapping[str, Any]) -> dict[str, str]:
    """Our values for the properties `record` (a record's properties; empty for a new record) leaves empty."""
    first, last = first_and_last(contact)
    ours = {"email": next(iter(contact.emails), None), "firstname": first, "lastname": last,
            "company": contact.company}
    missing = {name: value for name, value in ours.items() if value and _is_empty(record.get(name))}
    missing.update(_phones_to_add(contact.phones, record))
    return missing


def _phones_to_add(phones: tuple[str, ...], record: Mapping[str, Any]) -> dict[str, str]:
    held = [str(record[name]) for name in PHONE_PROPERTIES if not _is_empty(record.get(name))]
    unheld = [phone for phone in phones if not any(same_phone(phone, known) for known in held)]
    free = [name for name in PHONE_PROPERTIES if _is_empty(record.get(name))]
    return dict(zip(free, unheld))   # our primary phone first; a phone with no free slot stays in our store only


def _is_empty(value: Any) -> bool:
    # HubSpot answers an unset property as null or "" depending on the endpoint; both are empty.
    return value is None or not str(value).strip()
