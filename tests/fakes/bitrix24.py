"""Fake Bitrix24 REST behind an incoming webhook: contacts, leads and the duplicate finder.

Shapes follow bitrix24/b24restdocs: `{"result": …, "time": {…}}` (lists add `total`), errors
`{"error": "CODE", "error_description": "…"}`, 503 `QUERY_LIMIT_EXCEEDED` for the leaky bucket, 401
`INVALID_CREDENTIALS` for a wrong webhook code, 400 "Not found" for a missing record. Multi-field values (EMAIL, PHONE)
are lists of `{"ID", "VALUE_TYPE", "VALUE", "TYPE_ID"}`, and an update appends the items that carry no ID.
`crm.duplicate.findbycomm` is the eventually consistent read here (it ignores records younger than the search lag);
`crm.*.list` with a filter reads the table directly. While a portal is being updated (or behind a misbehaving proxy)
a call can be answered 200 with an HTML page instead of the REST answer: `portal_page()`.
"""
from __future__ import annotations

import re
import time
from typing import Any

from tests.fakes.base import FakeCRM, FakeRequest, FakeResponse
from tests.fakes.faults import Fault

USER_ID, CODE = "1", "t0ps3cretwebhookcode"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def portal_page(match: str | None = None) -> Fault:
    """A 200 whose body is a web page, not Bitrix24's JSON: the portal is being updated."""
    return Fault.respond(200, "<!DOCTYPE html><html><head><title>Bitrix24</title></head><body><h1>The portal is "
                         "being updated</h1><p>Please try again in a few minutes.</p></body></html>", match,
                         content_type="text/html; charset=UTF-8")


def _error(status: int, code: str, description: str) -> FakeResponse:
    return FakeResponse(status, {"error": code, "error_description": description})


class Bitrix24Fake(FakeCRM):
    vendor = "bitrix24"

    def __init__(self) -> None:
        super().__init__()
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self._multi_ids = iter(range(1, 10**9))
        self.methods = {
            "crm.contact.add": lambda p: self._add(self.contacts, p),
            "crm.lead.add": lambda p: self._add(self.leads, p),
            "crm.contact.list": lambda p: self._list(self.contacts, p),
            "crm.lead.list": lambda p: self._list(self.leads, p),
            "crm.contact.get": self._get_contact, "crm.contact.update": self._update_contact,
            "crm.duplicate.findbycomm": self._find_by_comm,
        }
        self.route("POST", r"/rest/(?P<user>\d+)/(?P<code>[^/]+)/(?P<method>[a-z.]+?)(?:\.json)?", self._rest)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/rest/{USER_ID}/{CODE}/"

    # --- what tests look at ---------------------------------------------------------------------------------------

    def contacts_for(self, contact_id: int) -> list[dict[str, Any]]:
        return [c for c in self.contacts.values() if c.get("ORIGIN_ID") == f"contact:{contact_id}"]

    def contacts_with_email(self, email: str) -> list[dict[str, Any]]:
        return [c for c in self.contacts.values()
                if any(v["VALUE"].lower() == email.lower() for v in c.get("EMAIL", []))]

    def leads_of(self, contact_record_id: int | str) -> list[dict[str, Any]]:
        return [lead for lead in self.leads.values() if str(lead.get("CONTACT_ID")) == str(contact_record_id)]

    def seed_contact(self, **fields: Any) -> int:
        """A contact a manager created by hand long ago (already in the duplicate index)."""
        with self.lock:
            record_id = self._store(self.contacts, fields)
            self.contacts[record_id]["created"] = float("-inf")
            return record_id

    # --- vendor hooks ---------------------------------------------------------------------------------------------

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        if re.match(rf"^/rest/{USER_ID}/{CODE}/", request.path):
            return None
        return _error(401, "INVALID_CREDENTIALS", "Invalid request credentials")

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        return _error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")

    def server_error(self) -> FakeResponse:
        return _error(500, "INTERNAL_SERVER_ERROR", "Internal server error")

    # --- REST -----------------------------------------------------------------------------------------------------

    def _rest(self, request: FakeRequest) -> FakeResponse:
        method = self.methods.get(request.params["method"])
        if method is None:
            return _error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        started = time.time()
        outcome = method(request.json() or {})
        if isinstance(outcome, FakeResponse):
            return outcome
        result, extra = outcome if isinstance(outcome, tuple) else (outcome, {})
        finished = time.time()
        return FakeResponse(200, {"result": result, **extra, "time": {
            "start": started, "finish": finished, "duration": finished - started, "processing": 0.001,
            "date_start": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started)),
            "date_finish": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(finished)),
            "operating_reset_at": int(started) + 600, "operating": 0}})

    def _store(self, table: dict[int, dict[str, Any]], fields: dict[str, Any]) -> int:
        record_id = self.new_id()
        record = {"ID": str(record_id), "created": self.now(), **{k: v for k, v in fields.items()
                                                                   if k not in ("EMAIL", "PHONE")}}
        for name, type_id in (("EMAIL", "EMAIL"), ("PHONE", "PHONE")):
            record[name] = [self._multi(item, type_id) for item in fields.get(name) or []]
        table[record_id] = record
        return record_id

    def _multi(self, item: dict[str, Any], type_id: str) -> dict[str, Any]:
        return {"ID": str(next(self._multi_ids)), "VALUE_TYPE": item.get("VALUE_TYPE", "WORK"),
                "VALUE": item["VALUE"], "TYPE_ID": type_id}

    @staticmethod
    def _invalid(fields: dict[str, Any]) -> FakeResponse | None:
        for item in fields.get("EMAIL") or []:
            if not _EMAIL.match(item.get("VALUE", "")):
                return _error(400, "", f"Invalid e-mail address: {item.get('VALUE')}")
        if "NAME" in fields or "LAST_NAME" in fields:
            if not (fields.get("NAME") or fields.get("LAST_NAME")):
                return _error(400, "", 'The "First name" or "Last name" field is required.')
        return None

    def _add(self, table: dict[int, dict[str, Any]], params: dict[str, Any]) -> Any:
        fields = params.get("fields") or {}
        problem = self._invalid(fields)
        if problem is not None:
            return problem
        if table is self.leads and fields.get("CONTACT_ID") and int(fields["CONTACT_ID"]) not in self.contacts:
            return _error(400, "", f"Contact {fields['CONTACT_ID']} is not found")
        return self._store(table, fields)

    def _list(self, table: dict[int, dict[str, Any]], params: dict[str, Any]) -> Any:
        conditions = params.get("filter") or {}
        rows = [r for r in table.values() if all(str(r.get(k)) == str(v) for k, v in conditions.items())]
        rows.sort(key=lambda r: int(r["ID"]))
        select = params.get("select") or []
        shown = [{k: v for k, v in r.items() if k != "created" and (not select or k in select)} for r in rows[:50]]
        return shown, ({"total": len(rows), "next": 50} if len(rows) > 50 else {"total": len(rows)})

    def _get_contact(self, params: dict[str, Any]) -> Any:
        record = self.contacts.get(int(params.get("id") or 0))
        if record is None:
            return _error(400, "", "Not found")
        return {k: v for k, v in record.items() if k != "created"}

    def _update_contact(self, params: dict[str, Any]) -> Any:
        record = self.contacts.get(int(params.get("id") or 0))
        if record is None:
            return _error(400, "", "Not found")
        fields = params.get("fields") or {}
        problem = self._invalid(fields)
        if problem is not None:
            return problem
        for name in ("EMAIL", "PHONE"):
            record[name] += [self._multi(item, name) for item in fields.pop(name, None) or [] if "ID" not in item]
        record.update(fields)
        return True

    def _find_by_comm(self, params: dict[str, Any]) -> Any:
        kind, values = params.get("type"), params.get("values") or []
        if kind not in ("EMAIL", "PHONE") or not values or len(values) > 20:
            return _error(400, "", "Parameter 'values' must contain 1 to 20 items")
        wanted = {self._comm_key(kind, v) for v in values}
        ids = [int(r["ID"]) for r in self.contacts.values() if self.searchable(r["created"])
               and any(self._comm_key(kind, item["VALUE"]) in wanted for item in r.get(kind, []))]
        return {"CONTACT": ids} if ids else []

    @staticmethod
    def _comm_key(kind: str, value: str) -> str:
        if kind == "EMAIL":
            return value.strip().lower()
        return re.sub(r"\D", "", value.split("#")[0].split("доб")[0])[-10:]   # extensions are ignored
