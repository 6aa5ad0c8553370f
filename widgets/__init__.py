"""The runs browser: ipywidgets tables over the catalog (see RunTable)."""
