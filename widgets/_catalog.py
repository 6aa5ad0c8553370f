"""Which catalog a view reads, and which run on it is this notebook's own."""

from __future__ import annotations

import os

from tracker.api import default_catalog
from tracker.catalog import Catalog

CatalogLike = Catalog | str | os.PathLike[str] | None


def resolve_catalog(catalog: CatalogLike) -> Catalog:
    """A Catalog from a Catalog, a path, or None (``tracker.default_catalog()``)."""
    if catalog is None:
        return default_catalog()
    if isinstance(catalog, Catalog):
        return catalog
    return Catalog(catalog)


def current_run_id(catalog: Catalog) -> str | None:
    """The id of the run this kernel is recording into ``catalog``, if any.

    The notebook extension records through the default catalog object; a view may have been
    given another Catalog for the same file, so both are asked.
    """
    run = catalog.current_run()
    if run is None:
        fallback = default_catalog()
        if fallback is not catalog and fallback.path == catalog.path:
            run = fallback.current_run()
    return None if run is None or run.ended else run.id
