"""The filter box and the quick filters above the runs table, and filter text built safely.

Everything here ends as one string of tracker's filter language, which the catalog compiles with
bound parameters. Values the user picks (a project, a label) are written as quoted literals by
:func:`literal`, never pasted raw; the text the user types is checked with
:func:`tracker.filter_language.compile_filter` first, so a typo shows inline with its position (and
the compiler's "did you mean") instead of reaching the catalog. While it does not parse, the bar
carries the class ``tracker-filter-invalid``, and the style sheet fades every view after it (the
table, its toolbar and pager) as stale. The box offers the fields and the catalog's
``params.*``/``metrics.*`` keys as completions of the word being typed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import ipywidgets as w

from tracker import filter_language, filter_syntax
from tracker.errors import FilterSyntaxError
from tracker.models import STATUSES

from ._html import code, message, muted

ANY = ""  # the "no restriction" choice of every dropdown
MISSING = None  # the choice of runs whose project or notebook is not set
_PLAIN_KEY = re.compile(r"[^\W\d][\w.\-/]*\Z")
_MAX_CHOICES = 200  # a dropdown of thousands of notebooks helps nobody; the filter box does
_MAX_COMPLETIONS = 200
# The field name being typed at the end of the text, a quoted key (params.`a b) included.
_PARTIAL = re.compile(r"[\w.\-/]*(`[^`]*)?\Z")
INVALID = "tracker-filter-invalid"


def literal(value: str) -> str:
    """``value`` as a quoted string of the filter language (quotes and backslashes escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def field_name(namespace: str, key: str) -> str:
    """The filter-language name of a field: ``status``, ``params.lr``, ``params.`a b```."""
    if namespace == "attributes":
        return key
    if _PLAIN_KEY.match(key):
        return f"{namespace}.{key}"
    return f"{namespace}.`" + key.replace("\\", "\\\\").replace("`", "``") + "`"


def ids_filter(ids: Iterable[str]) -> str:
    """A filter matching exactly the runs with these ids."""
    return "id IN (" + ", ".join(literal(run_id) for run_id in ids) + ")"


def completions(text: str, keys: Sequence[str]) -> list[str]:
    """The whole texts the box can offer: ``text`` with its last word completed to a field
    (an attribute, ``inputs``/``outputs`` or one of ``keys``, such as ``params.lr``), or with
    `` and <field>`` appended once it is a complete filter. A browser's list shows those that
    contain what is typed, so the completions of the word being typed are what it shows."""
    fields = [*sorted(filter_language.ATTRIBUTES), *sorted(filter_syntax.FILE_FIELDS),
              *(field_name(*key.split(".", 1)) for key in keys)]
    match = _PARTIAL.search(text)
    start = match.start() if match else len(text)
    prefix, partial = text[:start], text[start:].lower()
    if partial.upper() in ("AND", "OR", "NOT"):  # a whole keyword: the next field follows
        prefix, partial = f"{text} ", ""
    offered = [prefix + name for name in fields if name.lower().startswith(partial)
               and name.lower() != partial]
    if text.strip() and _parses(text):
        offered += [f"{text.rstrip()} and {name}" for name in fields]
    return offered[:_MAX_COMPLETIONS]


def _parses(text: str) -> bool:
    try:
        filter_language.compile_filter(text)
    except FilterSyntaxError:
        return False
    return True


def both(first: str | None, second: str | None) -> str | None:
    """The AND of two optional filters."""
    parts = [f"({text})" for text in (first, second) if text]
    return " and ".join(parts) or None


class FilterBar(w.VBox):
    """The filter box (filter language, errors shown inline) and the quick filters.

    ``filter_text()`` gives the combined filter; ``on_change`` callbacks run when the user
    changes anything (after Enter in a text box).
    """

    def __init__(self, text: str | None = None) -> None:
        # A Combobox is a text box with the browser's own list of suggestions (a <datalist>).
        self.text = w.Combobox(value=text or "", continuous_update=False, ensure_option=False,
                               placeholder="filter, e.g. params.lr > 0.01 and status = "
                                           "'completed'", layout=w.Layout(width="560px"))
        self.text.add_class("tracker-filter")
        # Not `keys`: every widget has a trait of that name, the list of its synced state.
        self.known_keys: list[str] = []
        self.error = w.HTML()
        self.error.add_class("tracker-hidden")
        self.error_text = ""
        self.status = w.Dropdown(options=[("any status", ANY), *((s, s) for s in STATUSES)],
                                 value=ANY, layout=w.Layout(width="130px"))
        self.project = w.Dropdown(options=[("any project", ANY)], value=ANY,
                                  layout=w.Layout(width="170px"))
        self.notebook = w.Dropdown(options=[("any notebook", ANY)], value=ANY,
                                   layout=w.Layout(width="190px"))
        self.label = w.Text(placeholder="label", continuous_update=False,
                            layout=w.Layout(width="120px"))
        self.since = w.DatePicker(description="from", layout=w.Layout(width="190px"),
                                  style={"description_width": "34px"})
        self.until = w.DatePicker(description="to", layout=w.Layout(width="180px"),
                                  style={"description_width": "24px"},
                                  tooltip="up to and including this day")
        self.clear_button = w.Button(description="Clear", tooltip="remove every filter",
                                     layout=w.Layout(width="70px"))
        self._callbacks: list[Callable[[], None]] = []
        # Per thread: the table fills the dropdowns from a background thread, and a user's
        # change arriving meanwhile on the kernel's thread must still notify.
        self._local = threading.local()
        quick = w.HBox([self.status, self.project, self.notebook, self.label, self.since,
                        self.until, self.clear_button])
        super().__init__([self.text, self.error, quick])
        for control in self._controls():
            control.observe(self._changed, "value")
        self.text.observe(lambda _: self._offer(), "value")
        self.clear_button.on_click(lambda _: self.clear())
        self._offer()

    def _controls(self) -> list[w.ValueWidget]:
        return [self.text, self.status, self.project, self.notebook, self.label, self.since,
                self.until]

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever the user changes the filter."""
        self._callbacks.append(callback)

    def filter_text(self) -> str | None:
        """The combined filter text, None for "every run".

        Raises FilterSyntaxError when the typed text does not parse (also shown inline).
        """
        typed = self.text.value.strip()
        try:
            filter_language.compile_filter(typed)
        except FilterSyntaxError as exc:
            self._show_error(exc)
            raise
        self._clear_error()
        parts = [f"({typed})"] if typed else []
        parts += self._quick_parts()
        return " and ".join(parts) or None

    def _quick_parts(self) -> list[str]:
        parts = []
        if self.status.value != ANY:
            parts.append(f"status = {literal(self.status.value)}")
        parts += _choice("project", self.project.value)
        parts += _choice("notebook_name", self.notebook.value)
        if self.label.value.strip():
            parts.append(f"labels CONTAINS {literal(self.label.value.strip())}")
        if self.since.value is not None:
            parts.append(f"started_at >= {literal(self.since.value.isoformat())}")
        if self.until.value is not None:
            # The "to" day is inclusive: everything before the next midnight.
            end = self.until.value + dt.timedelta(days=1)
            parts.append(f"started_at < {literal(end.isoformat())}")
        return parts

    def set_choices(self, *, projects: Sequence[tuple[Any, int]],
                    notebooks: Sequence[tuple[Any, int]], keys: Sequence[str] = ()) -> None:
        """Fill the project and notebook dropdowns from ``(value, count)`` pairs, and the
        completions from the catalog's ``keys`` (``params.lr``, ``metrics.acc``...)."""
        with self._silenced():
            _fill(self.project, "any project", projects)
            _fill(self.notebook, "any notebook", notebooks)
        self.known_keys = list(keys)
        self._offer()

    def _offer(self) -> None:
        self.text.options = completions(self.text.value, self.known_keys)

    @property
    def stale(self) -> bool:
        """Whether the typed filter does not parse, so what the table shows is from the last
        filter that did (the bar then carries the INVALID class, which the table's views
        after it are faded by)."""
        return INVALID in self._dom_classes

    def clear(self) -> None:
        """Remove every filter (typed and quick), then notify once."""
        with self._silenced():
            self.text.value = ""
            self.status.value = ANY
            self.project.value = ANY
            self.notebook.value = ANY
            self.label.value = ""
            self.since.value = None
            self.until.value = None
        self._notify()

    def set_text(self, text: str | None) -> None:
        """Replace the typed filter and notify (even when the text did not change)."""
        with self._silenced():
            self.text.value = text or ""
        self._notify()

    def _show_error(self, exc: FilterSyntaxError) -> None:
        self.error_text = f"{exc.message} at position {exc.position}"
        pointer = f"{exc.filter}\n{' ' * exc.position}^"
        self.error.value = (message(self.error_text, "error") + code(pointer)
                            + muted("The runs below are from the last filter that worked."))
        self.error.remove_class("tracker-hidden")
        self.add_class(INVALID)

    def _clear_error(self) -> None:
        self.error_text = ""
        self.error.value = ""
        self.error.add_class("tracker-hidden")
        self.remove_class(INVALID)

    def _changed(self, _: Any) -> None:
        if not getattr(self._local, "quiet", False):
            self._notify()

    def _notify(self) -> None:
        for callback in self._callbacks:
            callback()

    @contextlib.contextmanager
    def _silenced(self) -> Iterator[None]:
        """Changes made by code in the block do not notify (one refresh, not one per control)."""
        before = getattr(self._local, "quiet", False)
        self._local.quiet = True
        try:
            yield
        finally:
            self._local.quiet = before


def _choice(column: str, value: Any) -> list[str]:
    if value == ANY:
        return []
    if value is MISSING:
        return [f"{column} IS NULL"]
    return [f"{column} = {literal(value)}"]


def _fill(dropdown: w.Dropdown, any_label: str, counts: Sequence[tuple[Any, int]]) -> None:
    """Options "<value> (<count>)", keeping the current choice even if it has no runs now."""
    current = dropdown.value
    options: list[tuple[str, Any]] = [(any_label, ANY)]
    for value, count in list(counts)[:_MAX_CHOICES]:
        shown = "(none)" if value is MISSING else str(value)
        options.append((f"{shown} ({count:,})", value))
    if current != ANY and all(value != current for _, value in options):
        options.append(("(none)" if current is MISSING else str(current), current))
    dropdown.options = options
    dropdown.value = current
