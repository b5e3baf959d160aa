"""Shared by the window tests: a tiny scene and waiting for a drawn snapshot (never a sleep)."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pyqtgraph as pg

TINY_VIEW = ["view.grid=32", "view.samples=50", "view.snr_every=5", "view.snr_replicates=4",
             "view.log_every=5", 'device="cpu"']
TINY: dict[str, Any] = {
    "title": "Tiny scene",
    "description": "A tiny bimodal scene for the GUI tests.",
    "problem": {"name": "bimodal", "n_data": 64},
    "train": {"batch_size": 16, "hidden": [8, 8], "lr": 0.01},
    "view": {"grid": 32, "samples": 50, "snr_every": 5, "snr_replicates": 4, "log_every": 5},
    "device": "cpu",
    "runs": [{"objective": "vae", "k": 1}, {"objective": "iwae", "k": 4}],
}


def tiny(**changes: Any) -> dict[str, Any]:
    """A deep copy of TINY with top-level keys replaced."""
    raw = copy.deepcopy(TINY)
    raw.update(changes)
    return raw


def wait_snapshot(qtbot, window, condition, timeout=60_000, fresh=False):
    """Wait until a drawn snapshot satisfies ``condition(snapshot)``; return that snapshot.

    ``fresh``: only a snapshot drawn from now on counts (queued snapshots are drawn only while
    waiting, so one that answers a command just sent is never missed).
    """
    if not fresh and window.last_snapshot is not None and condition(window.last_snapshot):
        return window.last_snapshot
    with qtbot.waitSignal(window.snapshot_shown, timeout=timeout,
                          check_params_cb=lambda _step: condition(window.last_snapshot)):
        pass
    return window.last_snapshot


def non_finite_plot_data(figure) -> list[str]:
    """Every plot item of ``figure`` holding NaN or ±Inf, described; [] when all is finite.

    NaN is allowed in one place only: the separators of a curve drawn with ``connect='finite'``
    (contour polylines). Inf is allowed nowhere.
    """
    bad, inspected = [], 0
    for item in figure.scene().items():
        arrays: list[tuple[str, Any, bool]] = []
        if isinstance(item, pg.PlotCurveItem):
            nan_ok = isinstance(item.opts.get("connect"), str) and item.opts.get("connect") == "finite"
            arrays += [("x", item.xData, nan_ok), ("y", item.yData, nan_ok)]
        elif isinstance(item, pg.ScatterPlotItem):
            arrays += [("x", item.data["x"], False), ("y", item.data["y"], False)]
        elif isinstance(item, pg.ImageItem):
            arrays.append(("image", item.image, False))
        elif isinstance(item, pg.ViewBox):
            arrays.append(("range", np.asarray(item.viewRange(), dtype=float), False))
        for name, data, nan_ok in arrays:
            if data is None:
                continue
            inspected += 1
            data = np.asarray(data, dtype=float)
            if np.isinf(data).any() or (not nan_ok and np.isnan(data).any()):
                bad.append(f"{type(item).__name__}.{name}")
    return bad if inspected else ["no plot item found"]


def show(qtbot, fig, snapshot) -> None:
    """Show ``fig`` with ``snapshot`` (set again once exposed, when the panels have their sizes)."""
    fig.update_snapshot(snapshot)
    fig.show()
    qtbot.waitExposed(fig)
    fig.update_snapshot(snapshot)
    qtbot.wait(1)
