"""`crm-ingest dev`: a starter config, the schema, then web + worker + beat as one process tree."""
from __future__ import annotations

import errno
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import click

from ingest.settings import ConfigError, config_path, load_settings, mask_url
from workers.starter import setup_lines, write_starter_config

POLL_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 15
# Given to `worker` and `beat` by dev only (see quiet_maintenance_logs).
QUIET_MAINTENANCE_OPTION = "--quiet-maintenance-logs"
# The loggers of Celery's "Sending due task", "Task … received", "Task … succeeded" and, for a task that waited past
# its expiry (the schedule's interval), "Discarding revoked task" lines.
CELERY_TASK_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace", "celery.worker.request")


def run_dev(host: str, port: int, log_format: str | None = None) -> int:
    from workers.cli import upgrade_schema

    busy = _listen_problem(host, port)
    if busy:  # before anything is printed or started: the banner would otherwise promise a port gunicorn cannot have
        click.echo(busy, err=True)
        return 1
    path = config_path()
    if write_starter_config(path):
        click.echo(f"wrote a starter config with fresh secrets to {path}")
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        click.echo(f"{path}: {exc}", err=True)
        return 1
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_schema(settings.database_url)
    base_url = f"http://{host}:{port}"
    click.echo(f"database: {mask_url(settings.database_url)}; broker: {mask_url(settings.broker_url)}")
    click.echo(f"serving on {base_url}. Paste these into each provider's webhook settings:")
    for line in setup_lines(settings, base_url):
        click.echo(f"  {line}")
    if settings.admin_token:  # printed as the providers' secrets are: dev is for the person at this terminal
        header = shlex.quote(f"Authorization: Bearer {settings.admin_token.get_secret_value()}")
        click.echo(f"admin API: curl -H {header} {base_url}/api/events")
    # Text reads better in a terminal; the log_format setting or --log-format asks for JSON.
    log_format = log_format or settings.log_format or "text"
    return _supervise([
        ["web", "--host", host, "--port", str(port), "--workers", "1", "--log-format", log_format],
        ["worker", "--concurrency", "2", "--log-format", log_format, QUIET_MAINTENANCE_OPTION],
        ["beat", "--log-format", log_format, QUIET_MAINTENANCE_OPTION],
    ])


def _listen_problem(host: str, port: int) -> str | None:
    """Why the web process could not listen on host:port, found by binding it as gunicorn will (SO_REUSEADDR: a
    connection of an earlier run in TIME_WAIT does not count) and letting it go at once; None if it can."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} is in use: choose another with --port"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


class _MaintenanceChatter(logging.Filter):
    """Drops the info lines of the maintenance tasks beat sends every few seconds (outbox relay, delivery sweep),
    which buried the events' own lines in a terminal; their warnings and errors still pass."""

    def __init__(self) -> None:
        super().__init__()
        from crm_sync.delivery.wake import SCHEDULE_TASK
        from ingest.outbox import RELAY_TASK

        self.tasks = (RELAY_TASK, SCHEDULE_TASK)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        return not any(task in message for task in self.tasks)


def quiet_maintenance_logs() -> None:
    """On the loggers themselves, not on a handler: Celery's logging set-up replaces our handler, not loggers'
    filters, and forked pool processes inherit them."""
    chatter = _MaintenanceChatter()
    for name in CELERY_TASK_LOGGERS:
        logging.getLogger(name).addFilter(chatter)


def _supervise(commands: list[list[str]]) -> int:
    """Start every command; when one exits or Ctrl-C arrives, stop them all, each with everything it started.

    Each child leads a process group of its own: a terminal's Ctrl-C then reaches this supervisor alone, which stops
    each child once. Sharing the terminal's group, a gunicorn worker got SIGINT from the terminal and SIGQUIT from its
    master at once, could deadlock in its own shutdown, and outlived everything, keeping the port.
    """
    children = {argv[0]: subprocess.Popen([sys.executable, "-m", "workers.cli", *argv], start_new_session=True)
                for argv in commands}
    stopping = False

    def _stop(_signum=None, _frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                click.echo(f"process {name} exited with {child.returncode}; stopping", err=True)
                exit_code, stopping = child.returncode or 1, True
        time.sleep(POLL_SECONDS)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _kill_group(child)
    return exit_code


def _kill_group(child: subprocess.Popen) -> None:
    """Whatever is left of the child's process group (a worker its master could not stop, the child itself)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has exited
        pass
    child.wait()
