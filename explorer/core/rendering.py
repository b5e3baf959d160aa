"""Where ``Session.render`` and ``_repr_png_`` find their drawing function.

Drawing needs Qt, which core never imports: the GUI layer has the function (explorer/gui/shot.py) and
``explorer/__init__`` installs a lazy wrapper here when the package is imported (which happens before any
of its modules), so ``Session.render`` needs PySide6 only when it is called. This module imports nothing.
"""
from __future__ import annotations

from typing import Any, Callable

#: draws a snapshot offscreen: ``(snapshot, path, width=, style=, panel=) -> PNG bytes | None``
Renderer = Callable[..., "bytes | None"]
_renderer: Renderer | None = None


def set_renderer(renderer: Renderer | None) -> None:
    """Install the function that ``Session.render`` and ``_repr_png_`` draw with."""
    global _renderer
    _renderer = renderer


def render(snapshot: Any, path: Any = None, **options: Any) -> "bytes | None":
    if _renderer is None:
        raise RuntimeError("Session.render: no renderer installed (import explorer, which installs the GUI's)")
    return _renderer(snapshot, path, **options)
