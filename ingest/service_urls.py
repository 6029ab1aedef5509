"""Which database and broker URLs crm-ingest can run on, checked when the settings load (and so by check-config).

A problem names the URL's scheme only, never the URL: it may carry a password.
"""
from __future__ import annotations

import re

# The brokers the deployment guide covers: Redis, RabbitMQ (AMQP) and kombu's file-system transport (the embedded
# default).
SUPPORTED_BROKERS = ("redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem")
AMQP_BROKERS = ("amqp", "amqps", "pyamqp")
SUPPORTED_DATABASES = ("sqlite", "postgresql")


def url_scheme(url: str) -> str:
    """The scheme without its driver (redis for redis://…, postgresql for postgresql+psycopg://…); "" for none."""
    return url.partition("://")[0].partition("+")[0].lower() if "://" in url else ""


def is_amqp(url: str) -> bool:
    return url_scheme(url) in AMQP_BROKERS


def broker_url_problem(url: str) -> str | None:
    scheme = url_scheme(url)
    if scheme in SUPPORTED_BROKERS:
        return None
    return (f"broker_url must start with one of {', '.join(s + '://' for s in SUPPORTED_BROKERS)}"
            f" (got {scheme + '://' if scheme else 'no scheme'})")


def database_url_problem(url: str) -> str | None:
    """Why SQLAlchemy could not open this URL (a scheme it cannot read, a database we do not support, a driver that
    is not installed), or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    example = "postgresql+psycopg://user@host/crm_ingest or sqlite:///var/crm-ingest.db"
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        return f"database_url is not a database URL SQLAlchemy can read, such as {example}"
    if parsed.get_backend_name() not in SUPPORTED_DATABASES:
        return f"database_url must be PostgreSQL or SQLite, such as {example} (got {parsed.drivername}://)"
    try:
        dialect.import_dbapi()
    except ImportError:
        return (f"database_url's driver {parsed.drivername}:// is not installed; for PostgreSQL use "
                "postgresql+psycopg://, which crm-ingest installs")
    return None


MASK = "***"
# The password of a URL's userinfo, with or without a user name: the shortest run up to an '@' that is followed by a
# host and then the path, query or end, so that a raw '@' in the password is masked with it (urllib reads userinfo the
# same way, up to the last '@' of the authority). Several URLs in one string (kombu's failover "a;b") each count.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#;]*:).*?@(?=[^@/?#;]*(?:[/?#;]|$))")
# A password given as a query parameter, as libpq's (?password=, ?sslpassword=) and some brokers' URLs take it.
_QUERY_PASSWORD = re.compile(r"(?i)(?P<head>[?&;](?:[a-z_]*pass(?:word)?|pwd|passwd)=)[^&#;]*")


def mask_url(url: str) -> str:
    """A database or broker URL with every password replaced, for printing."""
    url = _USERINFO_PASSWORD.sub(lambda match: f"{match['head']}{MASK}@", url)
    return _QUERY_PASSWORD.sub(lambda match: f"{match['head']}{MASK}", url)
