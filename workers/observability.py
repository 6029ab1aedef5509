"""Logging and metrics set-up of the long-running commands (`web`, `worker`, `beat`, `dev`)."""
from __future__ import annotations

import logging

import click
from celery.signals import setup_logging

from ingest.logs import LOG_FORMATS, LogFormat, configure_logging, resolve_log_format
from ingest.settings import Settings

log_format_option = click.option(
    "--log-format", type=click.Choice(LOG_FORMATS), default=None,
    help="json: one object per line; text: for reading. Default: the log_format setting, else json (dev: text).")


def setup_logging_for(settings: Settings, option: str | None, default: LogFormat = "json",
                      level: str | int = "INFO") -> LogFormat:
    """Configure this process's logging now; the format chosen."""
    log_format = resolve_log_format(option, settings.log_format, default)
    configure_logging(log_format, settings.log_redaction, level)
    return log_format


def hand_celery_logging_to_us(settings: Settings, option: str | None) -> None:
    """Celery (worker, beat) configures logging through us instead of its own handlers (its --loglevel applies)."""
    log_format = resolve_log_format(option, settings.log_format, "json")

    @setup_logging.connect(weak=False)
    def _configure(loglevel=None, **_kwargs):
        configure_logging(log_format, settings.log_redaction, loglevel or "INFO")


def start_worker_metrics_server(folder, host: str, port: int) -> None:
    """This worker's own `/metrics` (main process, a daemon thread): what it and its pool children wrote."""
    from prometheus_client import CollectorRegistry, start_http_server

    from ingest.metrics_files import SampleFiles, folder_files

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SampleFiles(folder_files(folder)))
    start_http_server(port, addr=host, registry=registry)
    logging.getLogger(__name__).info("worker metrics on http://%s:%s/metrics", host, port)
