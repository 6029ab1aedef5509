"""The Flask application factory: `/hooks`, the admin API, health, readiness and metrics."""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from ingest.admin import admin
from ingest.contacts_api import contacts_api
from ingest.db_checks import CheckTimedOut, read_within, schema_problem
from ingest.deliveries_api import deliveries_api
from ingest.errors import error_response, register_error_handlers
from ingest.hooks import hooks
from ingest.metrics import render
from ingest.privacy_api import privacy_api
from ingest.queue_depth import bounded_connection
from ingest.runtime import Runtime
from ingest.shared_reads import SharedRead

log = logging.getLogger(__name__)


def create_app(runtime: Runtime | None = None) -> Flask:
    runtime = runtime or Runtime.from_environment()
    app = Flask("crm_ingest")
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["crm_ingest"] = runtime
    if runtime.settings.trusted_proxy_hops:
        # werkzeug's: REMOTE_ADDR from the last trusted_proxy_hops entries of X-Forwarded-For, which only those
        # proxies can have written (a client's own X-Forwarded-For ends up further left)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=runtime.settings.trusted_proxy_hops, x_proto=0, x_host=0,
                                x_port=0, x_prefix=0)
    register_error_handlers(app)
    app.register_blueprint(hooks)
    app.register_blueprint(admin)
    app.register_blueprint(contacts_api)
    app.register_blueprint(deliveries_api)
    app.register_blueprint(privacy_api)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    readiness = SharedRead(lambda: _readiness(runtime))
    state = SharedRead(lambda: _state(runtime))

    @app.get("/readyz")
    def readyz():
        failing = {name: problem for name, problem in readiness.get().items() if problem}
        if failing:
            return error_response(503, "not_ready", "; ".join(f"{k}: {v}" for k, v in failing.items()))
        return jsonify(status="ready", database="ok", broker="ok")

    @app.get("/metrics")
    def metrics():
        payload, content_type = render(runtime, state.get)
        return Response(payload, content_type=content_type)

    return app


def _state(runtime: Runtime) -> list:
    from ingest.state_metrics import state_families  # at the first scrape: a web worker that is never scraped
                                                     # does not carry it
    return state_families(runtime)


def _readiness(runtime: Runtime) -> dict[str, str | None]:
    return {"database": _database_problem(runtime), "broker": _broker_problem(runtime)}


def _database_problem(runtime: Runtime) -> str | None:
    """Reachable, answering within CHECK_SECONDS, and migrated: a webhook needs all three to be stored."""
    try:
        return read_within(runtime.engine, schema_problem)
    except CheckTimedOut:
        return "timeout"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


def _broker_problem(runtime: Runtime) -> str | None:
    try:
        with bounded_connection(runtime.celery.connection_for_write(), runtime.settings.publish_timeout_seconds):
            return None
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
