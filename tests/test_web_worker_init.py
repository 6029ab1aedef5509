"""What each gunicorn worker of `crm-ingest web` does once its app is loaded (workers.web._post_worker_init)."""
from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
from flask import Flask

from ingest.app import create_app
from workers.web import _post_worker_init


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_objects_the_app_was_built_from_leave_the_collectors_view(sqlite_runtime, unfrozen):
    app = create_app(sqlite_runtime)
    _post_worker_init(SimpleNamespace(wsgi=app))
    try:
        assert gc.get_freeze_count() > 0
        assert not any(obj is app for obj in gc.get_objects())
    finally:
        sqlite_runtime.outbox.stop_background_publisher()


def test_the_crm_ingest_app_starts_its_background_publisher(sqlite_runtime, unfrozen):
    _post_worker_init(SimpleNamespace(wsgi=create_app(sqlite_runtime)))
    try:
        assert sqlite_runtime.outbox._background is not None
    finally:
        sqlite_runtime.outbox.stop_background_publisher()


def test_another_app_is_served_all_the_same(unfrozen):
    _post_worker_init(SimpleNamespace(wsgi=Flask("hello")))
    assert gc.get_freeze_count() > 0
