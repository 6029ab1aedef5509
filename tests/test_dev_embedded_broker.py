"""The embedded broker `crm-ingest dev` runs on, as kombu sees it."""
from __future__ import annotations

import logging

import pytest
from kombu import Connection

from ingest.runtime import Runtime
from ingest.settings import settings_from_dict


@pytest.fixture
def embedded_runtime(tmp_path):
    settings = settings_from_dict({"database_url": f"sqlite:///{tmp_path}/crm-ingest.db", "broker_url": "filesystem://",
                                   "data_dir": str(tmp_path / "var")}, env={})
    runtime = Runtime(settings)
    yield runtime
    runtime.close()


def test_connecting_to_the_embedded_broker_logs_no_missing_hostname_warning(embedded_runtime, caplog):
    with caplog.at_level(logging.WARNING, logger="kombu"), embedded_runtime.celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
    assert [record.getMessage() for record in caplog.records if record.name.startswith("kombu")] == []


def test_the_embedded_broker_connection_is_the_one_kombu_makes_of_a_bare_filesystem_url(embedded_runtime):
    with embedded_runtime.celery.connection_for_write() as connection:
        bare = Connection("filesystem://", transport_options=connection.transport_options,
                          connect_timeout=connection.connect_timeout, heartbeat=connection.heartbeat)
        assert connection.info() == bare.info()
