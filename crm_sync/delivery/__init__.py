"""The delivery engine: every interaction to every configured CRM, exactly once in effect, on a database schedule.

- `planning`: one delivery row per (interaction, destination), upserted in the event's processing transaction;
- `drain`: a destination's due deliveries in batches, under its lease, rate bucket and circuit breaker;
- `snapshots`, `claims`, `results`: what is sent, what is due, what happened;
- `retry`, `ratelimit`, `circuit`, `lease`, `clock`: the policies, each in its own module;
- `wake`, `engine`: publishing drains after commit and from the sweep.
"""
