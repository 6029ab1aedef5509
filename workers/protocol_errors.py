"""gunicorn's own answers to requests it cannot read, in JSON like every other error of crm-ingest.

gunicorn refuses a malformed request line, a header with a control character, an over-long URI or too many header
bytes itself, before the app sees the request, and by default answers with an HTML page. A sender debugging an
integration should get the same `{"error", "message"}` body as from any other refusal. gunicorn has no setting for
this page: its workers write it through `gunicorn.util.write_error`, which this module replaces in the serving
process (its workers are forked from it). Nothing of such a request is stored: it never reached the app.
"""
from __future__ import annotations

import json

from gunicorn import util

from ingest.errors import HTTP_CODES


def answer_protocol_errors_in_json() -> None:
    util.write_error = write_json_error


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Same signature and status line as gunicorn's own, a JSON body instead of HTML."""
    code = HTTP_CODES.get(status_int) or reason.lower().replace(" ", "_")
    body = json.dumps({"error": code, "message": mesg or reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)
