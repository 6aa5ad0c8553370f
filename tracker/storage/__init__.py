"""The storage layer: one DuckDB catalog file and the protocol every process follows to use it.

The bottom of the package (docs/design.md §1): it imports none of the modules above it, only
leaf helpers (errors, events, values, models, arguments). ``store`` owns one catalog file (its
folder, connections, draft-publish, schema check and migration), ``lock`` the sidecar lock,
``instances`` the in-memory DuckDB instances files are attached to, ``files`` the checks of the
paths, ``schema`` and ``columns`` the tables, ``writer`` the SQL write of a batch of events,
``spools`` the spool and quarantine files, and ``recovery`` what dead processes left.
"""
