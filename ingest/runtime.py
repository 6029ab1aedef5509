"""The objects a process needs, built once from the settings: engine, sessions, Celery app, outbox."""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ingest.db import make_engine, make_read_sessions, make_sessions
from ingest.outbox import Outbox
from ingest.settings import Settings, load_settings

if TYPE_CHECKING:
    from crm_sync.delivery.engine import DeliveryEngine


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings

    @classmethod
    def from_environment(cls) -> "Runtime":
        return cls(load_settings())

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessions(self.engine)

    @cached_property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions for what only reads (a provider's synchronous reply): see ingest.db.make_read_sessions."""
        return make_read_sessions(self.engine)

    @cached_property
    def celery(self) -> Celery:
        from workers.celery_app import create_celery  # workers depend on ingest, not the other way at import time

        return create_celery(self)

    @cached_property
    def delivery(self) -> "DeliveryEngine":
        from crm_sync.delivery.engine import DeliveryEngine

        return DeliveryEngine(self.settings, self.sessions, celery=lambda: self.celery)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.celery, self.sessions, self.settings.requeue_after_seconds,
                      self.settings.publish_linger_seconds)

    def close(self) -> None:
        if "outbox" in self.__dict__:
            self.outbox.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "celery" in self.__dict__:
            self.celery.close()
