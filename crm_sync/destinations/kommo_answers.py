"""Reading Kommo's (amoCRM's) answers: the HAL `_embedded` lists, record ids, and what a write's answer confirms.

Kommo ids are positive integers. A listing with nothing to show answers 204 No Content (`VendorApi.json` with
`nothing=(204,)` gives None); a 200 must hold its `_embedded` list, and a write's answer the id of every record it
made. Anything else is a `crm_answer` error (see http.answer_error): never "nothing found", which after a lost write
would make a second record, and never an id such as "None" that the engine would link to every person it came for.
"""
from __future__ import annotations

from typing import Any

from crm_sync.destinations.base import ContactSnapshot, DeliveryError, DeliveryRequest, crm_id
from crm_sync.destinations.http import answer_error, answer_member


def kommo_id(value: Any) -> str | None:
    """A Kommo record id as text (see base.crm_id), or None; Kommo's are numbers, which its paths and bodies need."""
    text = crm_id(value)
    return text if text is not None and text.isdigit() else None


def embedded(body: dict[str, Any] | None, name: str, what: str, written: bool = False) -> list[dict[str, Any]]:
    """The records of a HAL answer (`_embedded.<name>`), each an object with an id; [] for None (a 204)."""
    if body is None:
        return []
    entities = answer_member(answer_member(body, "_embedded", dict, what, written=written), name, list, what,
                             written=written)
    for entity in entities:
        if not isinstance(entity, dict) or kommo_id(entity.get("id")) is None:
            raise answer_error(what, f"answered {name} without their ids: {str(entity)[:100]}", written=written)
    return entities


def request_key(item: dict[str, Any]) -> str | None:
    """The `request_id` an answer item echoes (the complex endpoint wraps it in a list)."""
    value = item.get("request_id")
    value = value[0] if isinstance(value, list) and value else value
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def complex_created(answer: list[Any], requests: list[DeliveryRequest], known: dict[int, str], what: str
                    ) -> dict[str, tuple[str, str]]:
    """(lead id, contact id) per delivery key from a `leads/complex` answer. Unless every lead comes back with its
    own id and its person's contact (the one we sent, for a known person), nothing is confirmed: the retry finds
    the leads that were made."""
    created: dict[str, tuple[str, str]] = {}
    wanted = {r.idempotency_key: known.get(r.contact.contact_id) for r in requests}
    for item in answer:
        key = request_key(item) if isinstance(item, dict) else None
        if key not in wanted:
            continue
        lead, contact = kommo_id(item.get("id")), kommo_id(item.get("contact_id"))
        if lead is None or contact is None:
            raise answer_error(what, f"answered lead {key} without {'its id' if lead is None else 'its contact id'}",
                               written=True)
        if wanted[key] is not None and contact != wanted[key]:
            raise answer_error(what, f"answered lead {key} with contact {contact}, not {wanted[key]} as sent",
                               written=True)
        created[key] = (lead, contact)
    missing = [key for key in wanted if key not in created]
    if missing:
        raise answer_error(what, f"answered without {missing}", written=True)
    leads = [lead for lead, _ in created.values()]
    if len(set(leads)) < len(leads):
        raise answer_error(what, "answered one lead id for several leads", written=True)
    return created


def created_contacts(answer: dict[str, Any], contacts: list[ContactSnapshot], what: str) -> list[str]:
    """The id of each contact a `POST /api/v4/contacts` made, in the order of `contacts`."""
    ids = {request_key(c): kommo_id(c.get("id")) for c in embedded(answer, "contacts", what, written=True)}
    missing = [c.contact_id for c in contacts if not ids.get(str(c.contact_id))]
    if missing:
        raise answer_error(what, f"answered without the contacts of {missing}", written=True)
    return [ids[str(c.contact_id)] for c in contacts]   # type: ignore[misc]


def note_ids(answer: dict[str, Any], keys: list[str], what: str) -> dict[str, str | DeliveryError]:
    """Note id (or the error) per delivery key from a `POST /api/v4/leads/notes` answer."""
    try:
        notes = {request_key(n): kommo_id(n.get("id")) for n in embedded(answer, "notes", what, written=True)}
    except DeliveryError as exc:
        return {key: exc for key in keys}
    unconfirmed = answer_error(what, "a note was not confirmed; the retry looks for it", written=True)
    return {key: notes.get(key) or unconfirmed for key in keys}
