"""`crm-ingest dev`: a starter config, the schema, then web + worker + beat as one process tree."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from ingest.db import migrate
from ingest.settings import ConfigError, config_path, load_settings, mask_url
from workers.starter import setup_lines, write_starter_config

POLL_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 15


def run_dev(host: str, port: int, log_format: str | None = None) -> int:
    path = config_path()
    if write_starter_config(path):
        click.echo(f"wrote a starter config with fresh secrets to {path}")
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        click.echo(f"{path}: {exc}", err=True)
        return 1
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    base_url = f"http://{host}:{port}"
    click.echo(f"database: {mask_url(settings.database_url)}; broker: {mask_url(settings.broker_url)}")
    click.echo(f"serving on {base_url}. Paste these into each provider's webhook settings:")
    for line in setup_lines(settings, base_url):
        click.echo(f"  {line}")
    if settings.admin_token:
        click.echo(f"admin API: {base_url}/api/events with Authorization: Bearer <admin_token from {path}>")
    # Text reads better in a terminal; the log_format setting or --log-format asks for JSON.
    log_format = log_format or settings.log_format or "text"
    return _supervise([
        ["web", "--host", host, "--port", str(port), "--workers", "1", "--log-format", log_format],
        ["worker", "--concurrency", "2", "--log-format", log_format],
        ["beat", "--log-format", log_format],
    ])


def _supervise(commands: list[list[str]]) -> int:
    """Start every command; when one exits or Ctrl-C arrives, stop them all, each with everything it started.

    Each child leads a process group of its own: a terminal's Ctrl-C then reaches this supervisor alone, which stops
    each child once. Sharing the terminal's group, a gunicorn worker got SIGINT from the terminal and SIGQUIT from its
    master at once, could deadlock in its own shutdown, and outlived everything, keeping the port.
    """
    children = [subprocess.Popen([sys.executable, "-m", "workers.cli", *argv], start_new_session=True)
                for argv in commands]
    stopping = False

    def _stop(_signum=None, _frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    exit_code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                click.echo(f"process {' '.join(child.args[3:5])} exited with {child.returncode}; stopping", err=True)
                exit_code, stopping = child.returncode or 1, True
        time.sleep(POLL_SECONDS)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in children:
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
