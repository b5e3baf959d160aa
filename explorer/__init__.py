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
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from .core import session as _session_module
from .core.config import Config, load_config, load_preset
from .core.errors import ConfigError
from .core.files import open_session, save_session
from .core.session import Session
from .core.snapshot import Snapshot
from .core.sweep import SweepTable
from .core.threads import set_threads

__all__ = ["Config", "ConfigError", "Session", "Snapshot", "SweepTable", "load_config", "load_preset",
           "open_session", "plot", "save_session", "set_threads", "sweep"]
__version__ = "0.1.0"


def _render_snapshot(snapshot: Snapshot, path: str | os.PathLike | None = None, **options: Any) -> bytes | None:
    """``Session.render``'s drawing: the GUI layer's, imported (with Qt) only when a figure is drawn."""
    from .gui.shot import render_snapshot

    return render_snapshot(snapshot, path, **options)


_session_module.set_renderer(_render_snapshot)


def sweep(spec: str | os.PathLike | Mapping[str, Any], out: str | os.PathLike | None = None, *,
          workers: int | None = None, scheduler: str | None = None, overrides: Sequence[str] = (),
          progress: bool = True) -> SweepTable:
    """Run a sweep (a spec file, a shipped sweep's name, or the spec as a dict) on Dask and return its
    table: a LocalCluster of ``workers`` processes, or the cluster at ``scheduler``. ``out``: the folder
    for the points and results.csv (default: a new temporary folder); points already finished there are
    skipped. ``overrides``: ``KEY=VALUE`` settings of every point's base config. See docs/sweeps.md."""
    from .core.sweep_dask import run_sweep

    return run_sweep(spec, out, workers=workers, scheduler=scheduler, overrides=overrides, progress=progress)


def plot(kind: str, source: Any, out: str | os.PathLike, **options: Any) -> Any:
    """Draw a figure headless (needs PySide6): ``kind`` ``"snr"`` or ``"metric"`` from a sweep table (a
    SweepTable, a sweep folder or its results.csv), ``"curves"`` from a metrics.csv; options ``metric``,
    ``x``, ``width``, ``style``, ``title`` as in ``python main.py plot``. Returns the path written."""
    from .gui.plot import draw

    return draw(kind, source, out, **options)
