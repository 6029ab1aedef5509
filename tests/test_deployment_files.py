"""Procfile and docker-compose.yml parse and run commands that exist."""
from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from workers.cli import main

ROOT = Path(__file__).resolve().parent.parent


def assert_runnable(argv: list[str]) -> None:
    """`crm-ingest <command>` must be a real command whose options parse; celery lines must name our app."""
    if argv[0] == "crm-ingest":
        assert argv[1] in main.commands, f"crm-ingest has no command {argv[1]!r}"
        command = main.commands[argv[1]]
        context = command.make_context(argv[1], [a for a in argv[2:] if "$" not in a], resilient_parsing=True)
        assert context is not None
    elif argv[0] == "celery":
        assert argv[1:3] == ["--app", "workers.celery_app"]
        assert argv[3] in {"flower", "inspect", "worker", "beat"}
    else:
        raise AssertionError(f"unexpected program {argv[0]!r}")


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (line.partition(": ") for line in lines if line)}


def test_procfile_has_the_four_processes_and_a_release_step():
    assert {"web", "worker", "beat", "flower", "release"} <= set(procfile())


def test_every_procfile_command_exists():
    for argv in procfile().values():
        assert_runnable(argv)


def test_flower_never_starts_without_a_password_and_listens_where_the_platform_says():
    flower = procfile()["flower"]
    assert "--basic-auth=${FLOWER_BASIC_AUTH:?set FLOWER_BASIC_AUTH=user:password}" in flower
    assert "--port=${PORT:-5555}" in flower


def test_web_is_served_by_gunicorn_through_crm_ingest_web():
    assert procfile()["web"][:2] == ["crm-ingest", "web"]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service_of_the_design():
    assert {"postgres", "redis", "web", "worker", "beat", "flower"} <= set(compose()["services"])


def test_every_long_running_compose_service_has_a_health_check():
    services = compose()["services"]
    for name in ("postgres", "redis", "web", "worker", "beat", "flower"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_every_compose_command_exists():
    for name, service in compose()["services"].items():
        if "command" in service and name not in ("postgres", "redis"):
            assert_runnable(service["command"])


def test_workers_can_scale_because_no_container_name_is_fixed():
    assert "container_name" not in compose()["services"]["worker"]


def test_flower_is_published_on_5555():
    assert "5555:5555" in compose()["services"]["flower"]["ports"]


def test_ci_runs_the_readme_test_command():
    readme_command = "pip install -e '.[test]' && python -m pytest"
    assert readme_command in (ROOT / ".ci" / "run").read_text()
    assert readme_command in (ROOT / "README.md").read_text()
