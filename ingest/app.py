"""The Flask application factory: `/hooks`, the admin API, health, readiness and metrics."""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify

from ingest.admin import admin
from ingest.contacts_api import contacts_api
from ingest.db import ping
from ingest.deliveries_api import deliveries_api
from ingest.errors import error_response, register_error_handlers
from ingest.hooks import hooks
from ingest.metrics import render
from ingest.privacy_api import privacy_api
from ingest.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(runtime: Runtime | None = None) -> Flask:
    runtime = runtime or Runtime.from_environment()
    app = Flask("crm_ingest")
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["crm_ingest"] = runtime
    register_error_handlers(app)
    app.register_blueprint(hooks)
    app.register_blueprint(admin)
    app.register_blueprint(contacts_api)
    app.register_blueprint(deliveries_api)
    app.register_blueprint(privacy_api)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        failing = {name: problem for name, problem in _readiness(runtime).items() if problem}
        if failing:
            return error_response(503, "not_ready", "; ".join(f"{k}: {v}" for k, v in failing.items()))
        return jsonify(status="ready", database="ok", broker="ok")

    @app.get("/metrics")
    def metrics():
        payload, content_type = render(runtime)
        return Response(payload, content_type=content_type)

    return app


def _readiness(runtime: Runtime) -> dict[str, str | None]:
    checks: dict[str, str | None] = {}
    try:
        ping(runtime.engine)
        checks["database"] = None
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    try:
        with runtime.celery.connection_for_write() as connection:
            # A second attempt at once, not after kombu's default two-second sleep: a probe must answer quickly.
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                         timeout=runtime.settings.publish_timeout_seconds)
        checks["broker"] = None
    except Exception as exc:
        checks["broker"] = f"unreachable ({type(exc).__name__})"
    return checks
