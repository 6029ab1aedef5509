"""Fake Pipedrive: persons (API v2: search, list, get, create, patch), person fields, leads and notes (API v1).

Shapes follow developers.pipedrive.com and the official clients: `{"success": true, "data": …, "additional_data": …}`;
errors `{"success": false, "error": "…", "error_info": "…"}`; search hits `{"result_score", "item": {…, "emails":
["…"], "phones": ["…"]}}`; persons `emails`/`phones` as `{value, primary, label}`, custom fields (v2) as
`custom_fields: {<40-character key>: value}`; person fields (v1) as `{id, key, name, field_type, …}`; 429 with
`x-ratelimit-*` headers. Search is the eventually consistent read (records younger than the search lag are not
found); listings are not. `search_limit = SEARCH_LIMIT` answers a search beyond the Search API's own limit with 429,
as Pipedrive does (off by default: tests that call the module directly have no rate gate in front of it). Person
fields are pipedrive_fields.py's; the envelope (`ok`, `error`) is pipedrive_envelope.py's, importable from here.
"""
from __future__ import annotations

import math
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from tests.fakes.base import FakeCRM, FakeRequest, FakeResponse
from tests.fakes.pipedrive_envelope import error, now_text, ok
from tests.fakes.pipedrive_fields import SEARCHABLE_TYPES, PersonFields

TOKEN = "pipedrive-test-token-0123456789abcdef"
SEARCH_LIMIT = (10, 2.0)   # Pipedrive's Search API: 10 requests per 2 s, on every plan
class PipedriveFake(PersonFields, FakeCRM):
    vendor = "pipedrive"

    def __init__(self) -> None:
        super().__init__()
        self.persons: dict[int, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.notes: dict[int, dict[str, Any]] = {}
        self.search_limit: tuple[int, float] | None = None   # e.g. SEARCH_LIMIT
        self._searches_served: list[float] = []               # monotonic moments, for the search limit
        self.route("GET", "/api/v2/persons/search", self._search)
        self.route("GET", "/api/v2/persons", self._list_persons)
        self.route("GET", r"/api/v2/persons/(?P<id>\d+)", self._get_person)
        self.route("POST", "/api/v2/persons", self._create_person)
        self.route("PATCH", r"/api/v2/persons/(?P<id>\d+)", self._patch_person)
        self.route("POST", "/api/v1/leads", self._create_lead)
        self.route("GET", "/api/v1/leads", lambda r: self._page(r, self.leads.values(), oldest_first=True,
                                                                 nested_pagination=False))
        self.route("POST", "/api/v1/notes", self._create_note)
        self.route("GET", "/api/v1/notes", lambda r: self._page(r, self.notes.values(), oldest_first=False,
                                                                 nested_pagination=True))

    # --- what tests look at ---------------------------------------------------------------------------------------

    def persons_with(self, email: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.persons.values()
                if (email and any(e["value"].lower() == email.lower() for e in p["emails"]))
                or (phone and any(re.sub(r"\D", "", x["value"])[-10:] == re.sub(r"\D", "", phone)[-10:]
                                  for x in p["phones"]))]

    def notes_of(self, person_id: int | str) -> list[dict[str, Any]]:
        return [n for n in self.notes.values() if str(n["person_id"]) == str(person_id)]

    def leads_of(self, person_id: int | str) -> list[dict[str, Any]]:
        return [lead for lead in self.leads.values() if str(lead["person_id"]) == str(person_id)]

    def seed_leads(self, person_id: int | str, count: int) -> None:
        """Leads a salesperson added to the person over time (not ours: no origin_id)."""
        with self.lock:
            for n in range(count):
                self._store_lead({"title": f"Lead {n}", "person_id": person_id})

    def seed_person(self, name: str, emails: list[str] = (), phones: list[str] = (),
                    custom_fields: dict[str, Any] | None = None) -> int:
        """A person a salesperson created long ago (searchable, outside any recent window)."""
        with self.lock:
            person_id = self._store_person({"name": name, "emails": [{"value": e} for e in emails],
                                            "phones": [{"value": p} for p in phones],
                                            "custom_fields": custom_fields or {}})
            self.persons[person_id].update(created=float("-inf"), updated_epoch=0.0)
            return person_id

    # --- vendor hooks ---------------------------------------------------------------------------------------------

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("x-api-token") == TOKEN:
            return None
        return error(401, "unauthorized access", errorCode=401)

    def rate_limited(self, retry_after: float | None, limit: int = 80) -> FakeResponse:
        response = error(429, "Request over limit", errorCode=429)
        response.headers.update({"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": "0",
                                 "x-ratelimit-reset": str(int(retry_after or 2))})
        return response

    def server_error(self) -> FakeResponse:
        return error(500, "Internal server error")

    # --- persons --------------------------------------------------------------------------------------------------

    def _store_person(self, body: dict[str, Any]) -> int:
        person_id = self.new_id()
        self.persons[person_id] = {"id": person_id, "created": self.now(), "updated_epoch": time.time(),
                                   "add_time": now_text(), "update_time": now_text(), "is_deleted": False,
                                   "name": body["name"], "owner_id": body.get("owner_id", 1),
                                   "emails": _entries(body.get("emails")), "phones": _entries(body.get("phones")),
                                   "custom_fields": dict(body.get("custom_fields") or {})}
        return person_id

    def _shown(self, person: dict[str, Any], request: FakeRequest | None = None) -> dict[str, Any]:
        """A person as v2 answers: every custom field under `custom_fields` (null where empty), or only the keys the
        request names in `custom_fields=`."""
        shown = {k: v for k, v in person.items() if k not in ("created", "updated_epoch")}
        wanted = (request.arg("custom_fields") or "").split(",") if request and request.arg("custom_fields") else None
        shown["custom_fields"] = {key: person["custom_fields"].get(key) for key in self._custom_keys()
                                  if wanted is None or key in wanted}
        return shown

    def _search(self, request: FakeRequest) -> FakeResponse:
        refused = self._over_search_limit()
        if refused is not None:
            return refused
        term = request.arg("term") or ""
        fields = (request.arg("fields") or "custom_fields,email,name,notes,phone").split(",")
        exact = request.arg("exact_match") == "true"
        if len(term) < (1 if exact else 2):
            return error(400, "Validation failed: term: Must be at least 2 characters long")
        items = []
        for person in self.persons.values():
            if not self.searchable(person["created"]):
                continue
            custom = self._searchable_custom_values(person)
            searched = [(field, value) for field in fields for value in _searched_values(person, field, custom)]
            if any(_hit(term, value, exact, field) for field, value in searched):
                items.append({"result_score": 1.0, "item": {
                    "id": person["id"], "type": "person", "name": person["name"],
                    "phones": [p["value"] for p in person["phones"]], "emails": [e["value"] for e in person["emails"]],
                    "visible_to": 3, "owner": {"id": person["owner_id"]}, "organization": None,
                    "custom_fields": custom, "notes": []}})
        limit = int(request.arg("limit", "100"))
        return ok({"items": items[:limit]}, next_cursor=None)

    def _over_search_limit(self) -> FakeResponse | None:
        """Pipedrive's 429 for a search beyond the Search API limit (a refused search uses up nothing)."""
        if self.search_limit is None:
            return None
        count, per = self.search_limit
        now = time.monotonic()
        self._searches_served = [moment for moment in self._searches_served if now - moment < per]
        if len(self._searches_served) < count:
            self._searches_served.append(now)
            return None
        return self.rate_limited(max(1, math.ceil(per - (now - self._searches_served[0]))), limit=count)

    def _searchable_custom_values(self, person: dict[str, Any]) -> list[str]:
        return [str(person["custom_fields"][key]) for key in self._custom_keys(SEARCHABLE_TYPES)
                if person["custom_fields"].get(key) not in (None, "")]

    def _list_persons(self, request: FakeRequest) -> FakeResponse:
        since = request.arg("updated_since")
        floor = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() if since \
            else 0.0
        ids = {int(i) for i in (request.arg("ids") or "").split(",") if i}
        rows = sorted((p for p in self.persons.values() if p["updated_epoch"] >= floor and (not ids or p["id"] in ids)),
                      key=lambda p: (p["updated_epoch"], p["id"]), reverse=request.arg("sort_direction") == "desc")
        start, limit = int(request.arg("cursor") or 0), int(request.arg("limit", "100"))
        page = [self._shown(p, request) for p in rows[start:start + limit]]
        return ok(page, next_cursor=str(start + limit) if start + limit < len(rows) else None)

    def _get_person(self, request: FakeRequest) -> FakeResponse:
        person = self.persons.get(int(request.params["id"]))
        return ok(self._shown(person, request)) if person else error(404, "Person not found")

    def _create_person(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        if not body.get("name"):
            return error(400, "Validation failed: name: Parameter is required")
        return self._unknown_custom_fields(body) or ok(self._shown(self.persons[self._store_person(body)]))

    def _patch_person(self, request: FakeRequest) -> FakeResponse:
        person = self.persons.get(int(request.params["id"]))
        if person is None:
            return error(404, "Person not found")
        body = request.json() or {}
        refused = self._unknown_custom_fields(body)
        if refused is not None:
            return refused
        for name in ("emails", "phones"):
            if name in body:
                person[name] = _entries(body[name])
        person["custom_fields"].update(body.get("custom_fields") or {})   # only the keys sent change
        person.update(update_time=now_text(), updated_epoch=time.time())
        return ok(self._shown(person))

    # --- leads and notes ------------------------------------------------------------------------------------------

    def _create_lead(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        if not body.get("title") or int(body.get("person_id") or 0) not in self.persons:
            return error(400, "Validation failed: title and an existing person_id or organization_id are required")
        return ok(self._store_lead(body), status=201)

    def _store_lead(self, body: dict[str, Any]) -> dict[str, Any]:
        lead_id = str(uuid.uuid4())
        self.leads[lead_id] = {
            "id": lead_id, "title": body["title"], "person_id": int(body["person_id"]), "organization_id": None,
            "owner_id": body.get("owner_id", 1), "source_name": "API", "origin": "API",
            "origin_id": body.get("origin_id"), "channel": None, "channel_id": None, "is_archived": False,
            "was_seen": False, "label_ids": [], "add_time": now_text(), "update_time": now_text(),
        }
        return self.leads[lead_id]

    def _create_note(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        targets = [body.get(k) for k in ("person_id", "lead_id", "deal_id", "org_id")]
        if not body.get("content") or not any(targets):
            return error(400, "Validation failed: content and one of deal_id, person_id, org_id, lead_id required")
        note_id = self.new_id()
        self.notes[note_id] = {"id": note_id, "content": body["content"], "person_id": body.get("person_id"),
                               "lead_id": body.get("lead_id"), "deal_id": None, "org_id": None, "active_flag": True,
                               "add_time": now_text(), "update_time": now_text(), "order": note_id}
        return ok(self.notes[note_id], status=201)

    def _page(self, request: FakeRequest, rows: Any, oldest_first: bool, nested_pagination: bool) -> FakeResponse:
        """A v1 listing. Notes answer `additional_data: {pagination: {start, limit, more_items_in_collection,
        next_start}}`; leads answer `additional_data: {start, limit, more_items_in_collection}` (no next_start)."""
        wanted = {k: request.arg(k) for k in ("person_id", "lead_id") if request.arg(k)}
        rows = [r for r in rows if all(str(r.get(k)) == v for k, v in wanted.items())]
        newest_first = not oldest_first and "DESC" in (request.arg("sort") or "").upper()
        rows.sort(key=lambda r: r.get("order", r["add_time"]), reverse=newest_first)
        start, limit = int(request.arg("start", "0")), min(int(request.arg("limit", "100")), 500)
        more = start + limit < len(rows)
        page = {"start": start, "limit": limit, "more_items_in_collection": more}
        if not nested_pagination:
            return ok(rows[start:start + limit] or None, **page)
        if more:
            page["next_start"] = start + limit
        return ok(rows[start:start + limit] or None, pagination=page)


def _entries(items: Any) -> list[dict[str, Any]]:
    entries = [{"value": i["value"], "primary": bool(i.get("primary")), "label": i.get("label") or "work"}
               for i in items or [] if i.get("value")]
    if entries and not any(e["primary"] for e in entries):
        entries[0]["primary"] = True
    return entries


def _searched_values(person: dict[str, Any], field: str, custom: list[str]) -> list[str]:
    if field in ("email", "phone"):
        return [entry["value"] for entry in person[f"{field}s"]]
    if field == "name":
        return [person["name"]]
    return custom if field == "custom_fields" else []


def _hit(term: str, value: str, exact: bool, field: str) -> bool:
    if field != "phone":
        return value.lower() == term.lower() if exact else term.lower() in value.lower()
    digits, wanted = re.sub(r"\D", "", value), re.sub(r"\D", "", term)
    return bool(wanted) and (digits == wanted if exact else wanted in digits)
