"""The exact ELBO is drawn in the bounds panel (issue 12: computed but never shown), with its error band
where the error is not negligible at the plot's scale."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot  # noqa: E402

from explorer.gui.figure import Figure  # noqa: E402


def with_error(snap, err: float):
    """Every run's history with an elbo_exact_err series of ``err`` at the exact ELBO's steps."""
    history = {}
    for name, metrics in snap.history.items():
        rows = np.asarray(metrics["elbo_exact"])
        history[name] = dict(metrics, elbo_exact_err=np.column_stack([rows[:, 0], np.full(len(rows), err)]))
    return dataclasses.replace(snap, history=history)


@pytest.fixture
def figure(qtbot):
    fig = Figure()
    qtbot.addWidget(fig)
    fig.resize(1400, 900)
    yield fig
    fig.close()


def show(fig, qtbot, snap) -> None:
    fig.update_snapshot(snap)
    fig.show()
    qtbot.waitExposed(fig)
    fig.update_snapshot(snap)
    QApplication.processEvents()


def test_the_exact_elbo_is_drawn_with_its_error_band(figure, qtbot):
    snap = with_error(make_snapshot(n_runs=2, n=50, samples=50, history_len=30), 0.4)
    show(figure, qtbot, snap)
    bounds = figure.panel("bounds")
    assert "exact ELBO" in bounds.keys_text
    for run in snap.runs:
        rows = snap.history[run.name]["elbo_exact"]
        x, y = bounds.curves[(run.index, "elbo_exact")].getData()
        assert np.allclose(x, rows[:, 0]) and np.allclose(y, rows[:, 1])
        lower, upper, band = bounds.bands[run.index]
        assert band.isVisible()
        assert np.allclose(upper.getData()[1] - lower.getData()[1], 0.8)
        assert np.allclose(0.5 * (upper.getData()[1] + lower.getData()[1]), rows[:, 1])


def test_a_negligible_error_draws_no_band(figure, qtbot):
    snap = with_error(make_snapshot(n_runs=2, n=50, samples=50, history_len=30), 1e-6)
    show(figure, qtbot, snap)
    bounds = figure.panel("bounds")
    assert not any(band.isVisible() for _, _, band in bounds.bands.values())
    assert len(bounds.curves[(0, "elbo_exact")].getData()[0]) == 30
