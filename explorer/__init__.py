"""VAE Explorer: train VAE / IWAE-family models live on 2-D-latent toy problems, with exact posteriors.

Scripted use (no Qt is imported until a figure is drawn)::

    from explorer import Session, load_preset
    session = Session(load_preset("mode-seeking", ["steps=500"]))
    session.step(500)
    print(session.summary()["runs"][0]["final"]["kl_qp"])
    session.render("scene.png")          # the window's figure, drawn offscreen (needs PySide6)

    import explorer
    table = explorer.sweep("assets/sweeps/snr-vs-k.toml", out="runs/snr")   # on Dask worker processes

torch runs with one intra-op thread by default (these tiny models are dispatch-bound);
``explorer.set_threads(n)`` chooses another count for this process.

The names are imported on first use (``import explorer`` itself imports neither torch nor Qt), so the
command line can set up its signal handling before torch takes its second or two to load.
"""
from __future__ import annotations

import importlib
import os
from typing import Any, Mapping, Sequence

from .core import rendering as _rendering

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "explorer.core.config", "load_config": "explorer.core.config", "load_preset": "explorer.core.config",
    "ConfigError": "explorer.core.errors",
    "open_session": "explorer.core.files", "save_session": "explorer.core.files",
    "Session": "explorer.core.session",
    "Snapshot": "explorer.core.snapshot",
    "SweepTable": "explorer.core.sweep",
    "set_threads": "explorer.core.threads",
}
__all__ = sorted([*_EXPORTS, "plot", "sweep"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


def _render_snapshot(snapshot: Any, path: str | os.PathLike | None = None, **options: Any) -> bytes | None:
    """``Session.render``'s drawing: the GUI layer's, imported (with Qt) only when a figure is drawn."""
    from .gui.shot import render_snapshot

    return render_snapshot(snapshot, path, **options)


_rendering.set_renderer(_render_snapshot)


def sweep(spec: str | os.PathLike | Mapping[str, Any], out: str | os.PathLike | None = None, *,
          workers: int | None = None, scheduler: str | None = None, overrides: Sequence[str] = (),
          progress: bool = True) -> Any:
    """Run a sweep (a spec file, a shipped sweep's name, or the spec as a dict) on Dask and return its
    table (a SweepTable): a LocalCluster of ``workers`` processes, or the cluster at ``scheduler``.
    ``out``: the folder for the points and results.csv (default: a new temporary folder); points already
    finished there are skipped. ``overrides``: ``KEY=VALUE`` settings of every point's base config. See
    docs/sweeps.md."""
    from .core.sweep_dask import run_sweep

    return run_sweep(spec, out, workers=workers, scheduler=scheduler, overrides=overrides, progress=progress)


def plot(kind: str, source: Any, out: str | os.PathLike, **options: Any) -> Any:
    """Draw a figure headless (needs PySide6): ``kind`` ``"snr"`` or ``"metric"`` from a sweep table (a
    SweepTable, a sweep folder or its results.csv), ``"curves"`` from a metrics.csv; options ``metric``,
    ``x``, ``width``, ``style``, ``title`` as in ``python main.py plot``. Returns the path written."""
    from .gui.plot import draw

    return draw(kind, source, out, **options)
