"""PostgreSQL catalog addresses: telling one from a file path, and showing it without its
password.

A team catalog is named by a libpq URL (``postgresql://user@host:5432/db?sslmode=require``).
tracker never takes it apart to connect: libpq reads it as a conninfo, with its own conventions
for the rest (``PGPASSFILE``, ``PGSERVICE``, ``~/.pg_service.conf``, ``sslmode``). A password
written into the URL works, but it must never be shown: every message, ``repr`` and record
names the catalog by :func:`redacted`.
"""

from __future__ import annotations

import re

__all__ = ["SCHEMES", "is_postgres_url", "redacted"]

SCHEMES = ("postgresql://", "postgres://")  # libpq's two spellings
HIDDEN = "***"

# The user:password part ends at the last '@' before the query: libpq itself stops it at the
# first '@' or '/', but a password holding a raw '@', '/' or '#' must be hidden whole, so the
# widest reading is hidden (a path holding '@' would be hidden too: never shown is the rule).
_CREDENTIALS = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/?]*):"
                          r"[^?]*@")
# password=... among the query's parameters (libpq accepts any conninfo keyword there)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL catalog (a ``postgresql://`` or ``postgres://``
    URL) rather than a catalog file."""
    return text.strip().lower().startswith(SCHEMES)


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``: the only form of a catalog URL that is
    shown, logged or stored."""
    url = _CREDENTIALS.sub(lambda found: f"{found['scheme']}{found['user']}:{HIDDEN}@", url,
                           count=1)
    return _QUERY_PASSWORD.sub(lambda found: found["key"] + HIDDEN, url)
