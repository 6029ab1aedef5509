"""The `crm-ingest` command line: processes (dev, web, worker, beat), database, sweeping and replay."""
from __future__ import annotations

import os
import sys

import click

from ingest.settings import (CONFIG_ENV, ConfigError, Settings, config_path, configured_data_dir,
                             configured_database_url, load_settings, mask_url)
from workers.cli_database import DatabaseErrorsInOneLine, require_database
from workers.observability import log_format_option

QUEUES = "ingest,deliver,maintenance"
# Processing an event is CPU work; a destination's drain mostly waits on the CRM and keeps its pool process while
# deliveries keep coming. One process more than there are cores keeps every core on events while a drain runs.
DEFAULT_CONCURRENCY = (os.cpu_count() or 1) + 1
# A web worker serves at most this many requests at once, and those that store at the same moment share one INSERT
# and one commit (ingest.group_commit), so a worker holding more connections than threads leaves commits unshared.
# With 8 rather than 4, in rounds that spread the same way, the ingress benchmark's webhook served 5 - 15 % more
# requests per second at 8 and at 32 connections (2 vCPUs), hello-world the same, for ~1.2 MB more per worker;
# 16 gained nothing more and cost another 2.6 MB.
DEFAULT_WEB_THREADS = 8


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _runtime():
    from ingest.db import make_engine
    from ingest.runtime import Runtime

    settings = _settings()
    # A command works on the store that is there: only migrate (and dev) create one. An empty database created by a
    # command run in the wrong directory, and its advice to migrate it, made the user's data look gone. Said before
    # anything is built (the embedded broker's folders); the engine's `mode=rw` makes sure nothing is created.
    require_database(settings.database_url)
    runtime = Runtime(settings)
    runtime.engine = make_engine(settings.database_url, create_sqlite_file=False)
    return runtime


PRIVATE_UMASK = 0o077


@click.group(cls=DatabaseErrorsInOneLine, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """crm-ingest: live-chat and lead webhooks in, deduplicated contacts and leads out."""
    # What the service writes holds webhooks' personal data and credentials (the SQLite store with its -wal and
    # -shm, the embedded broker's messages, metrics files, the starter config): for its own user only.
    os.umask(PRIVATE_UMASK)


# `dev` gives this to its worker and beat: hidden, it is no setting of production processes.
quiet_maintenance_option = click.option("--quiet-maintenance-logs", is_flag=True, hidden=True,
                                        help="leave the outbox relay's and delivery sweep's info lines out")


def _quiet_maintenance(quiet: bool) -> None:
    if quiet:
        from workers.dev import quiet_maintenance_logs

        quiet_maintenance_logs()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--public-url", metavar="URL",
              help="the https address providers reach this machine at (a reverse proxy or a tunnel): the printed "
                   "provider URLs are built on it")
@log_format_option
def dev(host: str, port: int, public_url: str | None, log_format: str | None) -> None:
    """Web, worker and beat in one process tree; writes a starter config on first run. Ctrl-C stops all."""
    from workers.dev import run_dev

    sys.exit(run_dev(host, port, log_format, public_url))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=DEFAULT_WEB_THREADS, show_default=True, type=int, help="threads per worker process")
@click.option("--cpu-affinity/--no-cpu-affinity", default=True, show_default=True,
              help="keep each worker process on a CPU of its own (Linux)")
@log_format_option
def web(host: str, port: int, workers: int, threads: int, cpu_affinity: bool, log_format: str | None) -> None:
    """Serve webhooks and the admin API with gunicorn."""
    from workers.observability import setup_logging_for
    from workers.web import prepare_metrics_dir, serve

    require_database(configured_database_url())  # before anything is made under data_dir
    data_dir = configured_data_dir()
    if data_dir is not None:  # first: loading the settings imports the metrics, which read the folder's variable
        prepare_metrics_dir(data_dir)
    settings = _settings()
    setup_logging_for(settings, log_format)
    serve(host, port, workers, threads, settings.data_dir, cpu_affinity=cpu_affinity)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", "-c", default=DEFAULT_CONCURRENCY, show_default="cores + 1", type=int,
              help="pool processes (events are CPU work; a destination's drain mostly waits on the CRM)")
@click.option("--queues", "-Q", default=QUEUES, show_default=True)
@click.option("--metrics-port", type=int, default=None, envvar="CRM_INGEST_WORKER_METRICS_PORT",
              help="serve this worker's own /metrics on this port (machines without a web process)")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="address for --metrics-port")
@log_format_option
@quiet_maintenance_option
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency: int, queues: str, metrics_port: int | None, metrics_host: str, log_format: str | None,
           quiet_maintenance_logs: bool, celery_args: tuple[str, ...]) -> None:
    """A Celery worker (extra arguments go to celery, e.g. --hostname, --loglevel)."""
    from ingest.metrics_files import prepare_worker_folder
    from ingest.runtime import Runtime
    from workers.observability import hand_celery_logging_to_us, start_worker_metrics_server

    argv = ["worker", f"--concurrency={concurrency}", f"--queues={queues}", *celery_args]
    if not any(arg.startswith(("--loglevel", "-l")) for arg in celery_args):
        argv.append("--loglevel=INFO")
    settings = _settings()
    require_database(settings.database_url)
    folder = prepare_worker_folder(settings.data_dir, metrics_port)  # before any metric exists in this process
    if metrics_port:
        start_worker_metrics_server(folder, metrics_host, metrics_port)
    hand_celery_logging_to_us(settings, log_format)
    _quiet_maintenance(quiet_maintenance_logs)
    Runtime(settings).celery.worker_main(argv)


@main.command(context_settings={"ignore_unknown_options": True})
@log_format_option
@quiet_maintenance_option
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(log_format: str | None, quiet_maintenance_logs: bool, celery_args: tuple[str, ...]) -> None:
    """Celery beat: runs the outbox relay and the delivery sweep on their schedules. Run exactly one."""
    from ingest.runtime import Runtime
    from workers.observability import hand_celery_logging_to_us

    settings = _settings()
    require_database(settings.database_url)
    hand_celery_logging_to_us(settings, log_format)
    _quiet_maintenance(quiet_maintenance_logs)
    Runtime(settings).celery.start(["beat", "--loglevel=INFO", *celery_args])


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema (SQLite or PostgreSQL)."""
    settings = _settings()
    shown = mask_url(settings.database_url)
    before, head = upgrade_schema(settings.database_url)
    if before == head:
        click.echo(f"the database at {shown} is already at {head}")
    else:
        click.echo(f"upgraded the database at {shown} from {before or 'empty'} to {head}")


def upgrade_schema(database_url: str) -> tuple[str | None, str]:
    """Bring the schema to head: (the revision the database was at, None if empty; head).

    A database migrated by a newer crm-ingest is one line: Alembic only says it cannot find that revision."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from ingest.db import alembic_config
    from ingest.migrations import STARTING_REVISION

    config = alembic_config(database_url)  # the migration engine (env.py) creates a SQLite file's folder
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        before = config.attributes.get(STARTING_REVISION)
        if before is not None and before not in {revision.revision for revision in script.walk_revisions()}:
            raise click.ClickException(f"the database at {mask_url(database_url)} is at revision {before}, newer "
                                       f"than this version (head {head}): upgrade crm-ingest") from None
        raise click.ClickException(f"cannot migrate the database at {mask_url(database_url)}: {exc}") from None
    return config.attributes.get(STARTING_REVISION), head


@main.command()
def sweep() -> None:
    """Enqueue every event still waiting, and wake the drainer of every destination with deliveries due."""
    runtime = _runtime()
    click.echo(f"enqueued {runtime.outbox.relay()} event(s)")
    woken = runtime.delivery.schedule()
    click.echo(f"woke {len(woken)} destination(s){': ' + ', '.join(woken) if woken else ''}")


@main.command("check-config")
def check_config() -> None:
    """Validate the configuration; print what is wrong and exit non-zero. Secrets are never printed."""
    path = config_path()
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"{path}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"config file: {path}{'' if path.exists() else ' (absent: defaults)'}")
    click.echo(f"database_url: {mask_url(settings.database_url)}")
    click.echo(f"broker_url: {mask_url(settings.broker_url)}{' (embedded)' if settings.uses_embedded_broker else ''}")
    click.echo(f"admin API: {'enabled' if settings.admin_token else 'closed (no admin_token)'}")
    for source in settings.sources.values():
        secret_part = "/<url_secret>" if source.url_secret else ""
        click.echo(f"source {source.name}: provider {source.provider}, URL /hooks/{source.name}{secret_part}")
    for destination in settings.destinations.values():
        extras = [f"rate {destination.rate}" if destination.rate else "no rate limit"]
        if destination.primary:
            extras.append("primary")
        click.echo(f"destination {destination.name}: kind {destination.kind}, {', '.join(extras)}")
    if not settings.sources:
        click.echo("warning: no sources configured; every webhook will get 404", err=True)
    from ingest.config_warnings import weak_settings

    for weakness in weak_settings(settings):
        click.echo(f"warning: {weakness}", err=True)
    from ingest.db_checks import missing_sqlite_database

    missing = missing_sqlite_database(settings.database_url, path, config_named=bool(os.environ.get(CONFIG_ENV)))
    if missing:  # valid all the same: migrate (or dev) creates it; every other command would stop on it
        click.echo(f"warning: {missing}", err=True)
    click.echo("configuration OK")


from workers.ops_cli import forget, purge  # noqa: E402  (the privacy commands live in their own module)

main.add_command(purge)
main.add_command(forget)

from workers.delivery_cli import deliveries  # noqa: E402  (a group of its own module, registered here)

main.add_command(deliveries)

from workers.events_cli import events, replay  # noqa: E402  (the event commands live in their own module)

main.add_command(events)
main.add_command(replay)

if __name__ == "__main__":
    main()
