"""The benchmarks' deployment (web, workers, beat as processes) leaves nothing running when it fails to start."""
from __future__ import annotations

import pytest

from bench.servers import Server
from bench.workers import Deployment
from ingest.db import migrate


@pytest.mark.timeout(120)
def test_a_deployment_whose_web_server_fails_to_start_stops_the_workers_it_started(tmp_path):
    database = f"sqlite:///{tmp_path}/crm-ingest.db"
    migrate(database)
    config = tmp_path / "crm-ingest.toml"
    config.write_text(f'database_url = "{database}"\ndata_dir = "{tmp_path}/var"\n')
    deployment = Deployment(config, tmp_path, workers=2, beat=True)
    deployment.web.stop()
    deployment.web = Server("web", "no_such_module:create_app", 1, 1, tmp_path)   # exits at once

    with pytest.raises(RuntimeError, match="web server exited"):
        deployment.start()

    assert not [process.name for process in deployment.celery_processes if process.running]
