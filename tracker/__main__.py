"""``python -m tracker``: the same command line as the ``tracker`` script."""

from __future__ import annotations

from tracker.cli import main

raise SystemExit(main())
