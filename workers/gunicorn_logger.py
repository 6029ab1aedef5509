"""gunicorn's error and access logs through crm-ingest's logging (JSON or text, redacted), one line per request.

The access line names method, path, status and duration as fields; the query string is never logged (Roistat sends
its credential as `token=`) and neither is a source's URL secret (`/hooks/<source>/<url_secret>`). A webhook that
stored an event has its one line from the app instead (`event stored`, with the same fields), not a second one here.
"""
from __future__ import annotations

import logging
import sys

from gunicorn.glogging import Logger

from ingest.logs import REQUEST_LOGGED, request_fields, without_request_secrets
from workers.slow_clients import read_timed_out


class GunicornLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                log.removeHandler(handler)
            log.propagate = True  # to the root handler that crm-ingest configured
        if not any(isinstance(existing, _RequestSecretsFilter) for existing in self.error_log.filters):
            self.error_log.addFilter(_RequestSecretsFilter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled or environ.get(REQUEST_LOGGED):
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        fields = request_fields(environ, int(status), round(request_time.total_seconds() * 1000, 3))
        self.access_log.info("%s %s %s", fields["http_method"], fields["path"], status,
                             extra={**fields, "response_bytes": getattr(resp, "sent", None)})

    def exception(self, msg, *args, **kwargs) -> None:
        """A client that left its request half sent is a client's doing, said in one line, not a traceback."""
        if read_timed_out(sys.exc_info()[1]):
            self.error_log.warning("a client sent part of a request, then nothing for as long as a read may wait: "
                                   "connection closed")
            return
        super().exception(msg, *args, **kwargs)


class _RequestSecretsFilter(logging.Filter):
    """gunicorn's error lines quote what a refused or failed request asked for ("Invalid request from ip=…: Invalid
    HTTP request line: 'GET /hooks/jivo-main/<secret> …'", "Error handling request POST /hooks/roistat?token=…")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = without_request_secrets(record.getMessage()), None
        return True
