"""The exceptions tracker raises, all rooted at :class:`TrackerError`.

Each also inherits the standard exception a caller would already catch::

    TrackerError
    ├── RunNotFoundError        (LookupError)   no run matches a reference
    ├── AmbiguousRunError       (LookupError)   a prefix matches several runs
    ├── FilterSyntaxError       (ValueError)    a filter string does not parse
    ├── CatalogError                            the catalog file cannot be used
    │   ├── CatalogLockedError  (TimeoutError)  another process held it past the deadline
    │   ├── CatalogVersionError                 written by a newer tracker
    │   └── NotACatalogError                    not a DuckDB catalog, or corrupt
    └── NoActiveRunError        (RuntimeError)  a logging call with no run started
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRunError",
    "CatalogError",
    "CatalogLockedError",
    "CatalogVersionError",
    "FilterSyntaxError",
    "NoActiveRunError",
    "NotACatalogError",
    "RunNotFoundError",
    "TrackerError",
    "TrackerWarning",
]


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
    """The catalog was written by a newer version of tracker."""

    def __init__(self, message: str, *, path: str, version: int) -> None:
        super().__init__(message, path=path)
        self.version = version


class NotACatalogError(CatalogError):
    """The file is not a tracker catalog, or it is corrupt; it is left untouched."""


class NoActiveRunError(TrackerError, RuntimeError):
    """A call needs an active run and none is started."""


class TrackerWarning(UserWarning):
    """Tracking had a problem; the user's code ran on unaffected."""
