"""Recording what an engine does while a test's action runs: its statements, its commits."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, event


@contextmanager
def recorded(engine: Engine, event_name: str) -> Iterator[list[tuple]]:
    """Every firing of the engine event (e.g. "commit", "before_cursor_execute") inside the block, with its args."""
    seen: list[tuple] = []

    def listener(*args) -> None:
        seen.append(args)
    event.listen(engine, event_name, listener)
    try:
        yield seen
    finally:
        event.remove(engine, event_name, listener)


def statements_while(engine: Engine, action) -> list[str]:
    """The SQL of every statement the engine ran during `action()`."""
    with recorded(engine, "before_cursor_execute") as calls:
        action()
    return [args[2] for args in calls]


def commits_while(engine: Engine, action) -> int:
    with recorded(engine, "commit") as commits:
        action()
    return len(commits)
