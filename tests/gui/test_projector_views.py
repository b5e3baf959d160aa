"""View control (issue 12): a mouse-wheel zoom never freezes a curve panel, a double-click resets one
panel, Figure.reset_views (View ▸ Reset Views, and R) resets them all."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot  # noqa: E402
from window_helpers import show  # noqa: E402

from explorer.gui.figure import Figure  # noqa: E402


@pytest.fixture
def figure(figure, qtbot):
    """conftest's bare figure, showing two runs at step 300."""
    show(qtbot, figure, make_snapshot(n_runs=2, n=50, samples=60, history_len=30, step=300))
    return figure


def centre(fig, panel) -> QPoint:
    return fig.mapFromScene(panel.plot.getViewBox().sceneBoundingRect().center())


def wheel(fig, panel, clicks: int = 3) -> None:
    """A real wheel event over the panel (zoom in)."""
    pos = QPointF(centre(fig, panel))
    for _ in range(clicks):
        event = QWheelEvent(pos, QPointF(fig.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                            False)
        QApplication.sendEvent(fig.viewport(), event)
    QApplication.processEvents()


def double_click(fig, panel) -> None:
    """Press, release, double-click, release: the events a real double-click sends."""
    pos = QPointF(centre(fig, panel))
    global_pos = QPointF(fig.viewport().mapToGlobal(pos.toPoint()))
    left = Qt.MouseButton.LeftButton
    for kind, buttons in ((QEvent.Type.MouseButtonPress, left), (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton),
                          (QEvent.Type.MouseButtonDblClick, left), (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton)):
        event = QMouseEvent(kind, pos, global_pos, left, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(fig.viewport(), event)
    QApplication.processEvents()


def longer(snap, extra: int):
    """The same runs ``extra`` steps later: each history row repeated further along the step axis."""
    import numpy as np

    history = {}
    for run, metrics in snap.history.items():
        history[run] = {}
        for name, rows in metrics.items():
            rows = np.asarray(rows)
            more = rows[-1:].repeat(5, axis=0).copy()
            more[:, 0] = rows[-1, 0] + np.linspace(extra / 5, extra, 5)
            history[run][name] = np.concatenate([rows, more])
    return dataclasses.replace(snap, history=history, step=snap.step + extra)


def test_a_wheel_zoom_keeps_following_training_and_a_double_click_undoes_it(figure, qtbot):
    panel = figure.panel("kl")
    vb = panel.plot.getViewBox()
    before = vb.viewRange()
    wheel(figure, panel)
    zoomed = vb.viewRange()
    assert zoomed[0][1] - zoomed[0][0] < 0.9 * (before[0][1] - before[0][0]), "the wheel did not zoom"
    assert panel.zoom_note.isVisible()
    # training goes on: a zoom that showed the latest step scrolls with it instead of freezing
    snap = figure.snapshot
    later = longer(snap, 400)
    figure.update_snapshot(later)
    QApplication.processEvents()
    (x0, x1), _ = vb.viewRange()
    assert x1 >= later.step - 1, f"the zoomed view froze at {x1:.0f}, training is at {later.step}"
    assert abs((x1 - x0) - (zoomed[0][1] - zoomed[0][0])) < 1e-6 * later.step + 1e-6, "the zoom was lost"
    # double-click: back to the automatic range
    double_click(figure, panel)
    assert not panel.zoom_note.isVisible()
    figure.update_snapshot(later)
    (x0, x1), _ = vb.viewRange()
    assert x0 <= 1.0 * later.history[later.runs[0].name]["kl_qp"][0, 0] + 1 and x1 >= later.step


def test_reset_views_undoes_every_zoom(figure):
    kl, posterior, weights = figure.panel("kl"), figure.panel("posterior"), figure.panel("weights")
    wanted = {p.name: p.plot.getViewBox().viewRange() for p in (kl, weights)}
    for panel in (kl, posterior, weights):
        wheel(figure, panel)
    assert posterior.pinned
    zoomed = posterior.view_rect()
    figure.reset_views()
    figure.update_snapshot(figure.snapshot)
    QApplication.processEvents()
    assert not posterior.pinned
    x0, x1, y0, y1 = posterior.view_rect()
    w = figure.snapshot.runs[0].view_box or figure.snapshot.box  # the mass it follows again, all of it
    assert x0 <= w[0] and w[1] <= x1 and y0 <= w[2] and w[3] <= y1
    assert (x1 - x0) > 1.2 * (zoomed[1] - zoomed[0])
    for panel in (kl, weights):
        (x0, x1), (y0, y1) = panel.plot.getViewBox().viewRange()
        (a0, a1), (b0, b1) = wanted[panel.name]
        assert (x0, x1, y0, y1) == pytest.approx((a0, a1, b0, b1), rel=1e-6, abs=1e-6), panel.name


def test_a_folded_curve_panel_has_its_range_when_it_shows(qtbot):
    """Curves fed while folded away (hidden) get their y range all the same: unfolded, every run's latest
    value is inside it (it read 0…1 for values up to 38)."""
    fig = Figure()
    qtbot.addWidget(fig)
    fig.resize(1100, 650)
    snap = make_snapshot(n_runs=3, n=50, samples=60, history_len=30, step=300)
    fig.update_snapshot(snap)
    fig.show()
    qtbot.waitExposed(fig)
    fig.update_snapshot(snap)
    QApplication.processEvents()
    assert fig.curves_folded and not fig.panel("kl").plot.isVisible()
    fig.resize(1900, 1200)
    QApplication.processEvents()
    fig.update_snapshot(snap)
    QApplication.processEvents()
    assert not fig.curves_folded
    _, (y0, y1) = fig.panel("kl").plot.getViewBox().viewRange()
    for run in snap.runs:
        for metric in ("kl_qp", "kl_pq"):
            assert y0 <= run.metrics[metric] <= y1, (run.name, metric, run.metrics[metric], (y0, y1))
    fig.close()
