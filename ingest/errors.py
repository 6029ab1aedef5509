"""Every error the HTTP API returns is JSON: {"error": "<machine_code>", "message": "<for a person>"}."""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from ingest.db import database_unavailable, driver_message

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    413: "body_too_large", 414: "uri_too_long", 415: "unsupported_media_type", 417: "expectation_failed",
    431: "header_fields_too_large", 500: "internal_error", 501: "not_implemented", 503: "unavailable",
}
# The wait /hooks and the admin routes ask for when the database cannot be reached: an outage outlasts seconds.
DATABASE_RETRY_AFTER_SECONDS = "30"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    response = jsonify(error=code, message=message)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"the body is larger than max_body_bytes ({app.config['MAX_CONTENT_LENGTH']} bytes)"
        # werkzeug's own headers say how to succeed: Allow on a 405, Retry-After where it sets one.
        kept = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
        return error_response(exc.code or 500, HTTP_CODES.get(exc.code, "http_error"), message, kept)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        return unexpected_error_response()


def unexpected_error_response():
    current_app.logger.exception("unhandled error")
    return error_response(500, "internal_error", "an unexpected error occurred; it has been logged")


def answer_503_while_the_database_is_down(blueprint: Blueprint) -> None:
    """A route of this blueprint that cannot reach the database answers 503 `database_unavailable` with Retry-After,
    as /hooks does (which handles its own); any other database error stays a logged 500."""

    @blueprint.errorhandler(SQLAlchemyError)
    def _database_error(exc: SQLAlchemyError):
        if not database_unavailable(exc):
            return unexpected_error_response()
        current_app.logger.error("database unavailable: %s", driver_message(exc))
        return error_response(503, "database_unavailable",
                              f"the database is unavailable ({driver_message(exc)}); retry later",
                              {"Retry-After": DATABASE_RETRY_AFTER_SECONDS})
