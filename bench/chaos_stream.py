"""The chaos run's payload stream: real requests of all four providers about generated people, some redelivered.

The conversations come from the delivery tests' generator (`tests/delivery/provider_events.py`): every person has
one phone, written a different way in almost every request, and sometimes an email; Jivo chats are accepted and then
finished with a transcript. On top of that, a share of the payloads is delivered again, byte for byte, as providers
do when they miss an acknowledgement: half of those copies at the same moment as the first (on another connection,
so both race through /hooks together), the others seconds later, and some a third time.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from tests.contacts.provider_requests import Delivery as ProviderRequest
from tests.delivery.provider_events import Person, people, traffic

CONCURRENT_SHARE = 0.5      # of the redelivered payloads: the copy races the first delivery
THIRD_COPY_SHARE = 0.1      # of the redelivered payloads: delivered a third time, later still
LATER_SECONDS = (0.5, 20.0)  # how much later a copy that does not race comes (at most half the stream's length)


@dataclass(frozen=True)
class Send:
    request: ProviderRequest
    at: float        # seconds after the stream starts
    copy: int        # 0: the first delivery; 1, 2: redeliveries


@dataclass(frozen=True)
class Stream:
    sends: list[Send]
    everyone: list[Person]

    @property
    def payloads(self) -> int:
        return sum(1 for send in self.sends if send.copy == 0)

    @property
    def redelivered(self) -> int:
        return sum(1 for send in self.sends if send.copy == 1)

    @property
    def seconds(self) -> float:
        return max((send.at for send in self.sends), default=0.0)


def build_stream(rng: random.Random, payloads: int, people_count: int, rate: float, redelivered_share: float
                 ) -> Stream:
    """About `payloads` distinct requests about `people_count` people, the first deliveries at `rate` per second."""
    everyone = people(people_count, first=10_000)
    originals = traffic(rng, everyone, payloads, redelivery_rate=0.0)
    earliest, latest = LATER_SECONDS
    later = (earliest, max(earliest, min(latest, len(originals) / rate / 2)))
    sends: list[Send] = []
    for index, request in enumerate(originals):
        at = index / rate
        sends.append(Send(request, at, 0))
        if rng.random() >= redelivered_share:
            continue
        again = at if rng.random() < CONCURRENT_SHARE else at + rng.uniform(*later)
        sends.append(Send(request, again, 1))
        if rng.random() < THIRD_COPY_SHARE:
            sends.append(Send(request, again + rng.uniform(*later), 2))
    sends.sort(key=lambda send: send.at)   # stable: a racing copy stays right behind its first delivery
    return Stream(sends, everyone)
