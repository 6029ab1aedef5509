"""gunicorn's error and access logs through crm-ingest's logging (JSON or text, redacted), one line per request.

The access line names method, path, status and duration as fields; the query string is never logged (Roistat sends
its credential as `token=`) and neither is a source's URL secret (`/hooks/<source>/<url_secret>`).
"""
from __future__ import annotations

import re

from gunicorn.glogging import Logger

_URL_SECRET = re.compile(r"^(/hooks/[^/]+)/[^/]+")


def loggable_path(path: str) -> str:
    return _URL_SECRET.sub(r"\1/<url_secret>", path or "")


class GunicornLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                log.removeHandler(handler)
            log.propagate = True  # to the root handler that crm-ingest configured

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        method, path = environ.get("REQUEST_METHOD", "-"), loggable_path(environ.get("PATH_INFO", ""))
        duration_ms = round(request_time.total_seconds() * 1000, 3)
        self.access_log.info("%s %s %s", method, path, status, extra={
            "http_method": method, "path": path, "http_status": int(status), "duration_ms": duration_ms,
            "remote_addr": environ.get("REMOTE_ADDR", "-"), "response_bytes": getattr(resp, "sent", None),
            "user_agent": environ.get("HTTP_USER_AGENT", "-"),
        })
