"""`crm-ingest dev`: a starter config, the schema, then web + worker + beat as one process tree."""
from __future__ import annotations

import errno
import gc
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import click

from ingest.settings import ConfigError, Settings, config_path, load_settings, mask_url
from workers.starter import (WILDCARD_HOSTS, hosted_providers, local_base_url, public_base_url, setup_lines,
                             write_starter_config)

POLL_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 15
STOP_POLL_SECONDS = 0.1
# Given to `worker` and `beat` by dev only (see quiet_maintenance_logs).
QUIET_MAINTENANCE_OPTION = "--quiet-maintenance-logs"
# The loggers of Celery's "Sending due task", "Task … received", "Task … succeeded" and, for a task that waited past
# its expiry (the schedule's interval), "Discarding revoked task" lines.
CELERY_TASK_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace", "celery.worker.request")


def run_dev(host: str, port: int, log_format: str | None = None, public_url: str | None = None) -> int:
    from workers.cli import upgrade_schema

    if public_url is not None:
        try:
            public_url = public_base_url(public_url)
        except ValueError as exc:
            click.echo(f"--public-url: {exc}", err=True)
            return 1
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
    for line in banner_lines(settings, host, port, public_url):
        click.echo(line)
    # Text reads better in a terminal; the log_format setting or --log-format asks for JSON.
    log_format = log_format or settings.log_format or "text"
    return _supervise([
        ["web", "--host", host, "--port", str(port), "--workers", "1", "--log-format", log_format],
        ["worker", "--concurrency", "2", "--log-format", log_format, QUIET_MAINTENANCE_OPTION],
        ["beat", "--log-format", log_format, QUIET_MAINTENANCE_OPTION],
    ])


def banner_lines(settings: Settings, host: str, port: int, public_url: str | None = None) -> list[str]:
    """What dev prints before it starts its processes: where it serves, what to paste into each provider, and a
    curl line for the admin API. The curl line stays on the local address: it is run at this terminal."""
    local_url = local_base_url(host, port)
    lines = [f"database: {mask_url(settings.database_url)}; broker: {mask_url(settings.broker_url)}",
             _serving_line(host, port, local_url, public_url)]
    hosted = hosted_providers(settings)
    if hosted and not public_url:
        lines.append(_hosted_providers_note(hosted, local_url))
    lines.append("Paste these into each provider's webhook settings:")
    lines.extend(f"  {line}" for line in setup_lines(settings, public_url or local_url))
    if settings.admin_token:  # printed as the providers' secrets are: dev is for the person at this terminal
        header = shlex.quote(f"Authorization: Bearer {settings.admin_token.get_secret_value()}")
        lines.append(f"admin API: curl -H {header} {local_url}/api/events")
    return lines


def _serving_line(host: str, port: int, local_url: str, public_url: str | None) -> str:
    # A wildcard such as 0.0.0.0 is where gunicorn listens, not an address anything can connect to.
    where = (f"serving on port {port} of every interface ({local_url} from this machine)" if host in WILDCARD_HOSTS
             else f"serving on {local_url}")
    return f"{where}; providers reach it at {public_url}" if public_url else where


def _hosted_providers_note(hosted: list[str], local_url: str) -> str:
    names = hosted[0] if len(hosted) == 1 else f"{', '.join(hosted[:-1])} and {hosted[-1]}"
    return (f"{names} call from the internet and cannot reach {local_url}, the base of the URLs below (fine for "
            "testing with curl): give this machine a public https address (a reverse proxy or a tunnel) and start dev "
            "with --public-url https://<that address>")


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
    # Counted from before the first child starts: a Ctrl-C while they start (the banner is already out) then stops
    # them all. Arriving in between, its KeyboardInterrupt ended dev and left the children it had started running.
    interrupts = _Interrupts()
    signal.signal(signal.SIGINT, interrupts)
    signal.signal(signal.SIGTERM, interrupts)
    children = {argv[0]: subprocess.Popen([sys.executable, "-m", "workers.cli", *argv], start_new_session=True)
                for argv in commands}
    # What dev has built so far lives until it exits: frozen, it is left out of the collections the interpreter runs
    # on its way out, which took half a second of every stop.
    gc.freeze()
    try:
        return _run_until_stopped(children, interrupts)
    finally:  # whatever ends the wait, even a fault of dev's own: its children in their own sessions would outlive it
        _stop_all(children, interrupts)


class _Interrupts:
    """Counts Ctrl-C (and SIGTERM). The handler only counts and the main loop does the talking: a line printed from
    the handler could interrupt one the main loop is printing, and a buffered stream refuses that reentrant write."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _signum, _frame) -> None:
        self.count += 1


def _run_until_stopped(children: dict[str, subprocess.Popen], interrupts: _Interrupts) -> int:
    """Until Ctrl-C (0) or the exit of a child: then what dev exits with, after saying which child ended and how."""
    while not interrupts.count:
        for name, child in children.items():
            if child.poll() is not None:
                click.echo(f"{name} {_how_it_ended(child.returncode)}", err=True)
                return exit_status(child.returncode)
        time.sleep(POLL_SECONDS)
    return 0


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {_signal_name(-returncode)}"
    if returncode == 0:
        return "exited (status 0) while nothing had asked it to stop"
    return f"exited with status {returncode} (its log above says why)"


def _signal_name(number: int) -> str:
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"


def exit_status(returncode: int) -> int:
    """The shell's convention: killed by signal N is 128 + N (a negative code given to sys.exit became 247 for -9).
    A child that ended on its own ended dev's service all the same: a failure, even at status 0."""
    if returncode < 0:
        return 128 - returncode
    return returncode or 1


def _stop_all(children: dict[str, subprocess.Popen], interrupts: _Interrupts) -> None:
    """SIGTERM to every child still running; whatever is left STOP_TIMEOUT_SECONDS later is killed.

    Stopping takes 5 - 8 s even with no task running, nearly all of it the Celery worker's warm shutdown, in waits
    fixed in Celery and billiard: on the embedded broker its consumer polls in 2-second rounds and finishes the round
    it is in and one more (2 - 4 s); its pool's threads, its timer and its time-limit thread then each finish a
    sleep of up to 1 s. A running task is finished rather than abandoned: the embedded broker deletes a message's
    file when it hands it out and keeps it in memory until the ack, so a killed worker loses it. A second Ctrl-C only
    says that stopping is under way.
    """
    running = [name for name, child in children.items() if child.poll() is None]
    if running:
        click.echo(_stopping_line(running))
    for name in running:
        children[name].send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    interrupts_seen = interrupts.count
    while any(child.poll() is None for child in children.values()) and time.monotonic() < deadline:
        if interrupts.count > interrupts_seen:
            interrupts_seen = interrupts.count
            click.echo(f"still stopping (another Ctrl-C changes nothing; whatever is left in "
                       f"{deadline - time.monotonic():.0f} s is killed)")
        time.sleep(STOP_POLL_SECONDS)
    for child in children.values():
        _kill_group(child)


def _stopping_line(names: list[str]) -> str:
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    why = " (the worker first finishes any task it is running)" if "worker" in names else ""
    return f"stopping {listed}{why}…"


def _kill_group(child: subprocess.Popen) -> None:
    """Whatever is left of the child's process group (a worker its master could not stop, the child itself)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has exited
        pass
    child.wait()
