"""What a destination CRM module is: one small interface, two error classes, and the data it is given.

A destination never decides *when* to retry: it classifies each failure as transient (retry later, maybe after
`retry_after` seconds) or permanent (dead at once, with a reason class), and the delivery engine keeps the schedule
in the database. Every write carries the delivery's idempotency key, so a retry after a failure that happened *after*
the CRM stored the record finds that record instead of creating a second one.
"""
from __future__ import annotations

import logging
import math
import re
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

log = logging.getLogger(__name__)
# The longest wait a CRM can ask for: a larger Retry-After (or rate-limit reset) is a CRM's or a proxy's bug, and
# taken as it is it would overflow the schedule's dates or park the delivery past its max age.
MAX_RETRY_AFTER_SECONDS = 86_400.0


def sane_retry_after(seconds: float | None) -> float | None:
    """A requested wait as the engine can schedule it: None if absent or meaningless (not a finite number, negative),
    at most MAX_RETRY_AFTER_SECONDS."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(float(seconds), MAX_RETRY_AFTER_SECONDS)


# The most of a delivery error's message kept: in the delivery row and in its log line (a CRM's error text, quoted
# whole, can run to megabytes).
MAX_ERROR_MESSAGE = 4000


class DeliveryError(Exception):
    """A failed call to a CRM. `reason` is a machine class: auth, validation, rate_limit, crm_unavailable, …

    `outcome_unknown`: a write was sent but its answer never came (it timed out, or the connection dropped after the
    request went out): the CRM may still be committing it, so the engine waits for it to land before retrying."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None, status: int | None = None,
                 outcome_unknown: bool = False):
        super().__init__(message)
        self.reason, self.message, self.status = reason, message, status
        self.retry_after = sane_retry_after(retry_after)   # every module's waits pass here, header or body
        self.outcome_unknown = outcome_unknown

    @property
    def asks_to_wait(self) -> bool:
        """The CRM said "not now" rather than "failed" (see WAIT_REASONS); never true of a permanent error."""
        return False


# The reasons of a "not now, after retry_after" (a CRM's rate limit or IP block, HubSpot's account migration, our own
# shared bucket): the whole destination waits, since the limit or the migration is the account's, and the refusal is
# not a failed attempt, so sustained throttling cannot use up a delivery's attempts (its max age still bounds it).
WAIT_REASONS = frozenset({"rate_limit", "crm_migrating"})


class TransientError(DeliveryError):
    """Timeouts, connection errors, 5xx, 429 and vendor rate-limit bodies: try again later."""

    @property
    def asks_to_wait(self) -> bool:
        return self.reason in WAIT_REASONS


class PermanentError(DeliveryError):
    """Validation and authentication errors, plan limits: retrying cannot help; the delivery goes dead."""


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
_RATE_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
               "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86_400, "day": 86_400, "days": 86_400}


@dataclass(frozen=True)
class RateLimit:
    """`count` calls per `per_seconds`, parsed from a destination's `rate` ("100/10s", "5/s", "650000/1d")."""

    count: int
    per_seconds: float

    @classmethod
    def parse(cls, text: str) -> "RateLimit":
        match = _RATE.match(text.lower())
        if not match or match.group(3) not in _RATE_UNITS:
            raise ValueError(f"rate {text!r} must look like \"100/10s\": a count, '/', a duration in ms, s, m, h or d")
        count, amount = int(match.group(1)), float(match.group(2) or 1)
        per_seconds = amount * _RATE_UNITS[match.group(3)]
        if count < 1 or per_seconds <= 0:
            raise ValueError(f"rate {text!r} must allow at least one call per a positive duration")
        return cls(count, per_seconds)


class DestinationSettings(BaseModel):
    """Keys every destination has; each module subclasses it with its own (token, base_url, …)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    rate: str | None = None            # "100/10s": shared by every worker on every machine
    timeout_seconds: float = 10.0
    max_attempts: int = 8
    max_age_seconds: float = 86_400.0  # a delivery older than this goes dead even with attempts left
    primary: bool = False              # its record is the `crm_link` in Jivo's reply
    # A drain waits this long after taking the lease before its first claim, so a burst goes out in full batches
    # (fewer CRM calls, far less work per delivery) for at most this much more latency.
    batch_window_seconds: float = Field(default=0.05, ge=0, le=5)
    # The delivery engine's schedule: exponential backoff between attempts, capped, each wait
    # drawn from the second half of its window (crm_sync.delivery.retry).
    retry_initial_seconds: float = 2.0
    retry_max_seconds: float = 900.0
    # The circuit breaker: this many failed batches in a row pause the destination for a cool-down that doubles
    # with each re-opening (up to the max); afterwards one trial delivery decides whether it resumes.
    circuit_failures: int = 5
    circuit_cooldown_seconds: float = 30.0
    circuit_max_cooldown_seconds: float = 900.0

    @field_validator("rate")
    @classmethod
    def _rate_is_parseable(cls, value: str | None) -> str | None:
        if value is not None:
            RateLimit.parse(value)
        return value

    @field_validator("timeout_seconds", "max_age_seconds", "retry_initial_seconds", "retry_max_seconds",
                     "circuit_cooldown_seconds", "circuit_max_cooldown_seconds")
    @classmethod
    def _positive_duration(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive number of seconds")
        return value

    @field_validator("max_attempts", "circuit_failures")
    @classmethod
    def _at_least_one_attempt(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @property
    def rate_limit(self) -> RateLimit | None:
        return RateLimit.parse(self.rate) if self.rate else None


@dataclass(frozen=True)
class ContactSnapshot:
    """The person as our contact store knows them at delivery time (normalised, primary values first)."""

    contact_id: int
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()      # E.164
    company: str | None = None
    record_id: str | None = None       # this destination's record for the person, if we linked one before


@dataclass(frozen=True)
class InteractionSnapshot:
    kind: str                          # crm_sync.model.InteractionKind value
    provider: str
    source: str
    interaction_id: int
    conversation_id: str | None = None
    external_id: str | None = None
    subject: str | None = None
    state: str | None = None
    occurred_at: datetime | None = None
    transcript: tuple[dict[str, Any], ...] = ()   # {"author", "text", "at", "author_name"}
    page_url: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    lead: dict[str, Any] | None = None             # Lead fields (external_id, visit, title, text, data)


@dataclass(frozen=True)
class DeliveryRequest:
    idempotency_key: str               # deterministic: the same for every attempt and every replay
    attempt: int                       # 1 on the first try; a later attempt must look for its own earlier write
    contact: ContactSnapshot
    interaction: InteractionSnapshot | None = None


@dataclass(frozen=True)
class DeliveryResult:
    contact_record_id: str | None      # the CRM's id for the person (kept in our link table)
    interaction_record_id: str | None = None
    record_url: str | None = None      # where a person opens the record (Jivo's crm_link)
    api_calls: int = 0


class Destination:
    """Base class. A module implements `find`, `upsert_contact` and `record_interaction`; `deliver` composes them."""

    kind: ClassVar[str]
    settings_model: ClassVar[type[DestinationSettings]] = DestinationSettings

    def __init__(self, settings: DestinationSettings, http: httpx.Client):
        self.settings = settings
        self.http = http

    def find(self, contact: ContactSnapshot) -> str | None:
        """The CRM's record id for this person, found by email/phone/our contact id; None if absent."""
        raise NotImplementedError

    def upsert_contact(self, request: DeliveryRequest) -> str:
        """Create or update the person; idempotent by the request's key. Returns the record id."""
        raise NotImplementedError

    def record_interaction(self, request: DeliveryRequest, contact_record_id: str) -> str | None:
        """Attach the interaction (note, lead, deal…) to the person; idempotent by the request's key."""
        raise NotImplementedError

    def record_url(self, contact_record_id: str) -> str | None:
        return None

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        record_id = self.upsert_contact(request)
        interaction_id = self.record_interaction(request, record_id) if request.interaction else None
        return DeliveryResult(record_id, interaction_id, self.record_url(record_id))

    def deliver_batch(self, requests: list[DeliveryRequest]) -> list[DeliveryResult | DeliveryError]:
        """Several deliveries at once; a module whose vendor has a batch API overrides this to use fewer calls."""
        results: list[DeliveryResult | DeliveryError] = []
        for request in requests:
            try:
                results.append(self.deliver(request))
            except DeliveryError as exc:
                results.append(exc)
            except Exception as exc:  # a bug in the module: only this delivery fails; the others' writes stand
                log.exception("destination %s: delivery %s failed unexpectedly", self.settings.name,
                              request.idempotency_key)
                results.append(TransientError("internal_error", describe_exception(exc)))
        return results


# The longest record id we take from a CRM: the link table and the delivery row keep at most this many characters.
MAX_RECORD_ID_CHARS = 255
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ID_INT_LIMIT = 2 ** 63   # no CRM's database holds a larger integer id (a bigint): 10**40 is a glitch


def crm_id(value: Any) -> str | None:
    """A record id as a CRM answered it (a contact's, a note's, a lead's…), as text; None when it is no usable id.

    A positive integer (not a bool, below 2**63) or a non-empty string (stripped) of at most MAX_RECORD_ID_CHARS
    characters without control characters is an id. Anything else (None, 0, a negative number, True/False, "", a
    float, an object, a list, an over-long string) is a CRM's or a proxy's glitch: taken as it is, "None" or "False"
    would be linked to every person it was answered for, and the engine would merge them all into one contact."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value) if 0 < value < _ID_INT_LIMIT else ""
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if not text or len(text) > MAX_RECORD_ID_CHARS or _CONTROL_CHARACTERS.search(text):
        return None
    return text


def describe_exception(exc: BaseException) -> str:
    """An unexpected exception as a delivery's error message: its type, text and the line that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
