"""Identity owners read once for every event of a processing transaction, and kept current as its events claim,
merge and absorb.

A message's events are applied one after the other in one transaction; without this each of them would read the
owners of its own keys with a statement of its own. What the cache cannot know (a key claimed by a concurrent
transaction meanwhile) the claim itself finds out: its INSERT does not win, and the owners are read again.
"""
from __future__ import annotations

from typing import Iterable

from sqlalchemy.orm import Session

from crm_sync.facts import Claim, Key
from crm_sync.identity import identity_owners


class KnownOwners:
    def __init__(self) -> None:
        self._owners: dict[Key, int] = {}
        self._looked_up: set[Key] = set()

    def prefetch(self, session: Session, keys: Iterable[Key]) -> None:
        """Read the owners of all these keys in one statement."""
        self.owners_of(session, set(keys))

    def owners_of(self, session: Session, keys: set[Key]) -> dict[Key, int]:
        """The contact owning each of these keys that has an owner, reading only the keys not looked up yet."""
        missing = keys - self._looked_up
        if missing:
            self._owners.update(identity_owners(session, sorted(missing)))
            self._looked_up |= missing
        return {key: self._owners[key] for key in keys if key in self._owners}

    def settle(self, claim_sets: list[tuple[Claim, ...]], contact_ids: list[int | None]) -> None:
        """After an event's resolution: every key of its records belongs to the contact the record resolved to (a
        claimed, merged or absorbed key has moved there); a key still pointing at a merged contact is followed
        through `merged_into` when it is locked."""
        for claims, contact_id in zip(claim_sets, contact_ids):
            if contact_id is not None:
                for claim in claims:
                    self._owners[claim.key] = contact_id
                    self._looked_up.add(claim.key)

    def learn(self, owners: dict[Key, int]) -> None:
        """Keys this transaction has just claimed, and their contacts."""
        self._owners.update(owners)
        self._looked_up.update(owners)

    def forget(self, keys: Iterable[Key]) -> None:
        """A concurrent transaction won some of these keys: they are read again next time."""
        for key in keys:
            self._owners.pop(key, None)
            self._looked_up.discard(key)
