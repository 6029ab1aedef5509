"""With the database down, the admin API answers 503 `database_unavailable` with Retry-After on every route, and
the CLI says so in one line with a non-zero exit; other database errors stay 500s."""
from __future__ import annotations

import pytest

from ingest.runtime import Runtime
from tests.conftest import make_client
from tests.test_cli import cli

DEAD_DATABASE = "postgresql+psycopg://127.0.0.1:1/none"

ADMIN_ROUTES = [
    ("GET", "/api/events", None), ("GET", "/api/events/1", None), ("POST", "/api/events/1/replay", None),
    ("POST", "/api/replay", {"status": "dead"}), ("GET", "/api/contacts?email=a@example.com", None),
    ("GET", "/api/contacts/1", None), ("GET", "/api/deliveries", None), ("GET", "/api/deliveries/1", None),
    ("POST", "/api/deliveries/1/retry", None), ("POST", "/api/deliveries/retry", {"status": "dead"}),
    ("POST", "/api/forget", {"email": "a@example.com"}),
]


@pytest.fixture
def dead_database_client(make_settings):
    runtime = Runtime(make_settings(DEAD_DATABASE))
    yield make_client(runtime)
    runtime.close()


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES)
def test_every_admin_route_answers_503_with_retry_after_while_the_database_is_down(
        dead_database_client, admin_headers, method, path, body):
    response = dead_database_client.open(path, method=method, json=body, headers=admin_headers)
    assert (response.status_code, response.json["error"]) == (503, "database_unavailable")
    assert response.headers["Retry-After"].isdigit()
    assert "retry later" in response.json["message"]


def test_a_database_error_that_is_not_an_outage_stays_a_500(tmp_path, make_settings, admin_headers):
    runtime = Runtime(make_settings(f"sqlite:///{tmp_path}/never-migrated.db"))  # "no such table": a setup fault
    response = make_client(runtime).get("/api/events", headers=admin_headers)
    runtime.close()
    assert (response.status_code, response.json["error"]) == (500, "internal_error")


@pytest.fixture
def dead_database_workdir(tmp_path):
    (tmp_path / "crm-ingest.toml").write_text(f'database_url = "{DEAD_DATABASE}"\n')
    return tmp_path


@pytest.mark.parametrize("command", [("events", "list"), ("deliveries", "list"), ("replay", "--event", "1")])
def test_the_cli_says_in_one_line_that_the_database_is_down(dead_database_workdir, command):
    result = cli(dead_database_workdir, *command)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: the database at postgresql+psycopg://127.0.0.1:1/none is unavailable")
    assert len(result.stderr.strip().splitlines()) == 1
