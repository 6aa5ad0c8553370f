"""What the views tell the user: the confirmation bar, the notice bar (with Undo), error capture.

Nothing destructive happens on a first click: views call :meth:`ConfirmBar.ask` and act only
from its Confirm button. Failures inside callbacks never escape into the kernel as exceptions
(ipywidgets would print a traceback into the log); :func:`reporting` turns them into a message.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as w

from tracker.errors import TrackerError, TrackerWarning

from ._html import esc, message, style_block

# Errors a user can cause or fix (a bad filter, a locked catalog, a vanished run): shown, not
# warned about. Anything else is a bug in tracker: shown and also warned once.
_EXPECTED = (TrackerError, ValueError, LookupError, OSError, TimeoutError)
_warned_internal = False
_MARKS = {"ok": "✓ ", "warn": "⚠ ", "error": "✕ ", "info": ""}


class ConfirmBar(w.HBox):
    """A bar that asks before a destructive action: a message, Confirm and Cancel buttons."""

    def __init__(self) -> None:
        self.text = w.HTML()
        self.confirm_button = w.Button(button_style="danger", layout=_bar_layout())
        self.cancel_button = w.Button(description="Cancel", layout=_bar_layout())
        self.cancel_button.add_class("tracker-bar-button")
        self._action: Callable[[], None] | None = None
        self.question = ""
        super().__init__([self.text, self.confirm_button, self.cancel_button])
        self.add_class("tracker-bar")
        self.add_class("tracker-bar-danger")
        self.add_class("tracker-hidden")
        self.confirm_button.on_click(self._confirmed)
        self.cancel_button.on_click(lambda _: self.dismiss())

    @property
    def pending(self) -> bool:
        """True while a question waits for an answer."""
        return self._action is not None

    def ask(self, question: str, *, confirm: str, action: Callable[[], None]) -> None:
        """Show ``question``; ``action`` runs only when the Confirm button is clicked."""
        self.question = question
        self.text.value = message(question)
        self.confirm_button.description = confirm
        self._action = action
        self.remove_class("tracker-hidden")

    def dismiss(self) -> None:
        """Hide the bar and forget the pending action."""
        self._action = None
        self.question = ""
        self.text.value = ""
        self.add_class("tracker-hidden")

    def _confirmed(self, _: Any) -> None:
        action = self._action
        self.dismiss()
        if action is not None:
            action()


class Notice(w.HBox):
    """A one-line message (info, ok, warn or error), with an optional action such as Undo."""

    def __init__(self) -> None:
        self.html = w.HTML()
        self.action_button = w.Button(layout=_bar_layout())
        self.action_button.add_class("tracker-bar-button")
        self.action_button.add_class("tracker-hidden")
        self.text = ""
        self.kind = ""
        self._action: Callable[[], None] | None = None
        super().__init__([self.html, self.action_button])
        self.add_class("tracker-bar")
        self.add_class("tracker-hidden")
        self.action_button.on_click(self._clicked)

    def show(self, text: str, *, kind: str = "info", action: Callable[[], None] | None = None,
             label: str = "Undo") -> None:
        """Display ``text``; with ``action``, a button named ``label`` runs it once."""
        self.text, self.kind = text, kind
        # The text keeps the theme's body colour (AA contrast on the bar); the kind shows in
        # the bar's coloured edge and a leading mark.
        mark = _MARKS.get(kind, "")
        self.html.value = message(mark + text) if "\n" not in text else (
            f'<pre class="tracker-code">{esc(mark + text)}</pre>')
        for other in _MARKS:
            self.remove_class(f"tracker-bar-{other}")
        self.add_class(f"tracker-bar-{kind}")
        self._action = action
        self.action_button.description = label
        if action is None:
            self.action_button.add_class("tracker-hidden")
        else:
            self.action_button.remove_class("tracker-hidden")
        self.remove_class("tracker-hidden")

    def clear(self) -> None:
        """Hide the notice."""
        self.text, self.kind, self._action = "", "", None
        self.html.value = ""
        self.add_class("tracker-hidden")

    def _clicked(self, _: Any) -> None:
        action = self._action
        self._action = None
        self.action_button.add_class("tracker-hidden")
        if action is not None:
            action()


@contextlib.contextmanager
def reporting(show: Callable[[str], None]) -> Iterator[None]:
    """Run a UI action; on failure pass a readable message to ``show`` instead of raising."""
    try:
        yield
    except _EXPECTED as exc:
        show(str(exc) or type(exc).__name__)
    except Exception as exc:  # never into the user's kernel as a traceback
        show(f"tracker could not do that ({type(exc).__name__}: {exc})")
        _warn_internal(exc)


def _warn_internal(exc: Exception) -> None:
    global _warned_internal
    if _warned_internal:
        return
    _warned_internal = True
    warnings.warn(f"tracker's runs browser hit an internal error: {exc!r}", TrackerWarning,
                  stacklevel=3)


def button(description: str, action: Callable[[], None], *, tooltip: str = "",
           danger: bool = False, icon: str = "") -> w.Button:
    """A button sized to its text (never cut: it does not shrink) that calls ``action()``.

    ``icon`` is a Font Awesome name shown before the text.
    """
    widget = w.Button(description=description, tooltip=tooltip, icon=icon,
                      button_style="danger" if danger else "",
                      layout=w.Layout(width="auto", flex="none"))
    widget.on_click(lambda _: action())
    return widget


def _bar_layout() -> w.Layout:
    return w.Layout(width="auto", flex="none", margin="0 0 0 8px")


def close_tree(widget: w.Widget) -> None:
    """Close a widget and everything inside it, so replaced views free their kernel comms."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


def styled(box: w.Box) -> w.Box:
    """Mark ``box`` as a tracker view and give it the style sheet."""
    sheet = w.HTML(style_block())
    sheet.add_class("tracker-hidden")
    box.children = (sheet, *box.children)
    box.add_class("tracker-ui")
    return box
