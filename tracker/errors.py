"""The exceptions tracker raises, all rooted at :class:`TrackerError`.

Each also inherits the standard exception a caller would already catch::

    TrackerError
    ├── RunNotFoundError        (LookupError)     no run matches a reference
    ├── ArtifactNotFoundError   (LookupError)     no recorded version, or its content not kept
    ├── AmbiguousRunError       (LookupError)     a prefix matches several runs
    ├── FilterSyntaxError       (ValueError)      a filter string does not parse
    ├── ArgumentError           (ValueError, TypeError)  an argument a function cannot use
    ├── DescriptorError         (ValueError)      an export/import descriptor is malformed
    ├── SQLError                (ValueError)      a sql() query failed
    │   └── ReadOnlySQLError    (PermissionError) the statement is not a single read
    ├── CatalogError                              the catalog cannot be used
    │   ├── CatalogLockedError  (TimeoutError)    another process held it past the deadline
    │   ├── CatalogVersionError                   by a newer tracker, or to be upgraded
    │   ├── CatalogOwnershipError (PermissionError) owned by someone else, or open to others
    │   ├── CatalogFullError    (OSError)         the disk is full
    │   ├── ProjectAccessError  (PermissionError) a PostgreSQL role may not do this
    │   └── NotACatalogError                      not a DuckDB catalog, or corrupt
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRunError",
    "ArgumentError",
    "ArtifactNotFoundError",
    "CatalogError",
    "CatalogFullError",
    "CatalogLockedError",
    "CatalogOwnershipError",
    "CatalogVersionError",
    "DescriptorError",
    "FilterSyntaxError",
    "NotACatalogError",
    "NotOnPostgresError",
    "ProjectAccessError",
    "ReadOnlySQLError",
    "RunNotFoundError",
    "SQLError",
    "TrackerError",
    "TrackerWarning",
]


def first_line(text: str, default: str) -> str:
    """The first line of an error's text (``default`` when it has none): what a one-line
    tracker error quotes from DuckDB, a parser or the OS."""
    lines = text.strip().splitlines()
    return lines[0] if lines else default


class TrackerError(Exception):
    """Root of every error tracker raises on purpose."""


class RunNotFoundError(TrackerError, LookupError):
    """No run matches the reference (id, unique id prefix or ``tracker://`` key)."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"no run matches {ref!r}")
        self.ref = ref


class AmbiguousRunError(TrackerError, LookupError):
    """A run id prefix matches more than one run."""

    def __init__(self, ref: str, matches: list[str]) -> None:
        shown = ", ".join(matches[:5])
        super().__init__(f"{ref!r} matches {len(matches)} runs ({shown}); give more characters")
        self.ref = ref
        self.matches = matches


class FilterSyntaxError(TrackerError, ValueError):
    """A filter string does not parse; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, *, text: str, position: int) -> None:
        pointer = f"\n  {text}\n  {' ' * position}^"
        super().__init__(f"{message} at position {position}{pointer}")
        self.message = message
        self.filter = text
        self.position = position


class ArgumentError(TrackerError, ValueError, TypeError):
    """A public function was given an argument it cannot use (a negative limit, a filter that
    is not text, an unknown role...); the message says what is accepted."""


class DescriptorError(TrackerError, ValueError):
    """An export/import descriptor is malformed; ``field`` names the offending part."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SQLError(TrackerError, ValueError):
    """A :func:`tracker.sql` query could not run (syntax, unknown table or column...)."""


class ReadOnlySQLError(SQLError, PermissionError):
    """:func:`tracker.sql` runs exactly one read statement; this was something else."""


class CatalogError(TrackerError):
    """The catalog cannot be opened or used."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class CatalogLockedError(CatalogError, TimeoutError):
    """Another process kept the catalog locked past the deadline."""

    def __init__(self, message: str, *, path: str, holder: str | None) -> None:
        super().__init__(message, path=path)
        self.holder = holder


class CatalogVersionError(CatalogError):
    """The catalog's schema is one this tracker cannot use: written by a newer version of
    tracker, or (PostgreSQL) an older one that only the catalog's owner may upgrade."""

    def __init__(self, message: str, *, path: str, version: int) -> None:
        super().__init__(message, path=path)
        self.version = version


class CatalogOwnershipError(CatalogError, PermissionError):
    """The catalog (file or folder) belongs to another user or is writable by others, so
    whoever controls it could read or forge our runs; it must be trusted explicitly."""


class NotOnPostgresError(CatalogError, NotImplementedError):
    """An operation a PostgreSQL catalog does not offer yet (only reads are ported so far)."""


class ProjectAccessError(CatalogError, PermissionError):
    """On a PostgreSQL catalog, the role connected may not do this: change a run of a project
    granted to it read-only, or administer a catalog it does not own."""


class CatalogFullError(CatalogError, OSError):
    """The disk holding the catalog (or its spool) is full; nothing recorded was lost."""


class NotACatalogError(CatalogError):
    """The file is not a tracker catalog, or it is corrupt; it is left untouched."""


class ArtifactNotFoundError(TrackerError, LookupError):
    """No recorded version of a file matches, or its content was not kept."""


class TrackerWarning(UserWarning):
    """Tracking had a problem; the user's code ran on unaffected."""
