"""The data panel as an x-pad (issue 13): dragging the observation marker with real mouse events moves x_obs
anywhere in x-space, arrow keys nudge it, a drag's moves are coalesced into few commands, and a drag in
the window changes x_obs in the next snapshot; at a far tail the exact numbers and the gap split are
still certified."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot  # noqa: E402
from window_helpers import show  # noqa: E402
from window_helpers import wait_snapshot  # noqa: E402

from explorer.core.snapshot import is_exact  # noqa: E402
from explorer.gui.figure import Figure  # noqa: E402


def widget_pos(fig: Figure, x: float, y: float) -> QPoint:
    """Where view point (x, y) of the data panel is on the figure's viewport."""
    p = fig.mapFromScene(fig.data_panel.plot.getViewBox().mapViewToScene(QPointF(x, y)))
    return QPoint(p.x(), p.y())


def drag(fig: Figure, start: QPoint, end: QPoint, steps: int = 12) -> None:
    """Press at ``start``, move in ``steps`` steps to ``end`` with the button held, release there."""
    viewport = fig.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        t = i / steps
        QTest.mouseMove(viewport, QPoint(round(start.x() + t * (end.x() - start.x())),
                                         round(start.y() + t * (end.y() - start.y()))))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_dragging_the_star_emits_points_of_x_space(qtbot, figure):
    snap = make_snapshot(n_runs=2, n=60)
    show(qtbot, figure, snap)
    vb = figure.data_panel.plot.getViewBox()
    (x0, x1), (y0, y1) = vb.viewRange()
    target = (x0 + 0.8 * (x1 - x0), y0 + 0.2 * (y1 - y0))  # not a data point: anywhere
    moved: list[tuple[float, ...]] = []
    figure.observation_moved.connect(moved.append)
    drag(figure, widget_pos(figure, *snap.x_obs[:2]), widget_pos(figure, *target))
    assert len(moved) >= 2  # live: every move, not only the drop
    sx, sy = vb.viewPixelSize()
    assert abs(moved[-1][0] - target[0]) < 3 * sx and abs(moved[-1][1] - target[1]) < 3 * sy
    # the panel shows the free point, and a late snapshot of the old x does not pull the star back
    assert figure.data_panel.marker_point() == moved[-1]


def test_dragging_elsewhere_pans_and_moves_nothing(qtbot, figure):
    snap = make_snapshot(n_runs=2, n=60)
    show(qtbot, figure, snap)
    (x0, x1), (y0, y1) = figure.data_panel.plot.getViewBox().viewRange()
    far = np.array([x0 + 0.05 * (x1 - x0), y1 - 0.05 * (y1 - y0)])
    assert np.hypot(*(far - snap.x_obs[:2])) > 0.1 * (x1 - x0)
    moved: list = []
    figure.observation_moved.connect(moved.append)
    drag(figure, widget_pos(figure, *far), widget_pos(figure, *(far + [0.1 * (x1 - x0), 0.0])))
    assert moved == []


def test_arrow_keys_nudge_the_focused_marker(qtbot, figure):
    snap = make_snapshot(n_runs=1, n=60)
    show(qtbot, figure, snap)
    panel = figure.data_panel
    (x0, x1), _ = panel.plot.getViewBox().viewRange()
    moved: list = []
    figure.observation_moved.connect(moved.append)
    star = widget_pos(figure, *snap.x_obs[:2])
    QTest.mouseClick(figure.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, star)
    assert panel.obs_marker.hasFocus()  # a click on the star gives it the keys
    QTest.keyClick(figure.viewport(), Qt.Key.Key_Right)
    QTest.keyClick(figure.viewport(), Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    assert len(moved) == 2
    assert moved[0][0] - snap.x_obs[0] == pytest.approx(0.02 * (x1 - x0), rel=1e-3)
    assert moved[0][1] == pytest.approx(snap.x_obs[1], abs=1e-6)
    assert moved[1][1] > moved[0][1] and moved[1][0] == moved[0][0]


def test_the_line_drags_along_a_1d_axis(qtbot, figure):
    snap = make_snapshot(n_runs=1, x_dim=1, n=60)
    show(qtbot, figure, snap)
    vb = figure.data_panel.plot.getViewBox()
    (x0, x1), (y0, y1) = vb.viewRange()
    mid_y = 0.5 * (y0 + y1)
    moved: list = []
    figure.observation_moved.connect(moved.append)
    target = x0 + 0.9 * (x1 - x0)
    drag(figure, widget_pos(figure, float(snap.x_obs[0]), mid_y), widget_pos(figure, target, mid_y))
    assert moved and len(moved[-1]) == 1
    assert abs(moved[-1][0] - target) < 3 * vb.viewPixelSize()[0]


# --------------------------------------------------------------------------- the window: live, coalesced
def test_a_drag_changes_x_obs_in_the_next_snapshot(open_window, qtbot):
    window = open_window()
    figure = window.figure
    before = window.last_snapshot
    vb = figure.data_panel.plot.getViewBox()
    qtbot.waitUntil(lambda: vb.sceneBoundingRect().width() > 100, timeout=30_000)  # laid out (gui/layout.py)
    (x0, x1), (y0, y1) = vb.viewRange()
    target = (x0 + 0.15 * (x1 - x0), y0 + 0.85 * (y1 - y0))
    drag(figure, widget_pos(figure, *before.x_obs[:2]), widget_pos(figure, *target))
    dropped = figure.data_panel.marker_point()
    after = wait_snapshot(qtbot, window, lambda s: s.observation is None
                          and np.allclose(s.x_obs, dropped, atol=1e-5), fresh=True)
    assert window.config.problem.x_obs == pytest.approx(dropped)
    assert not np.allclose(after.runs[0].log_post, before.runs[0].log_post)


def test_moves_are_coalesced_while_one_is_on_its_way(open_window, qtbot, monkeypatch):
    window = open_window()
    controller = window.controller
    sent: list[dict] = []
    send = controller._send

    def recording(name, **kwargs):
        if name == "set_observation":
            sent.append(kwargs)
        send(name, **kwargs)

    monkeypatch.setattr(controller, "_send", recording)
    points = [(0.5 + 0.01 * i, -0.3) for i in range(200)]
    for point in points:  # a fast drag: 200 moves before any snapshot can come back
        window.move_observation(point)
    assert len(sent) == 1  # the first; the others wait as one pending point
    last = wait_snapshot(qtbot, window, lambda s: s.observation is None
                         and np.allclose(s.x_obs, points[-1], atol=1e-6), fresh=True)
    assert len(sent) == 2 and sent[-1]["point"] == pytest.approx(points[-1])
    assert last.x_obs == pytest.approx(points[-1])
    window.set_observation(3)  # a click on a data point snaps back, and ends the free point
    wait_snapshot(qtbot, window, lambda s: s.observation == 3, fresh=True)
    assert window.config.problem.x_obs is None


def test_a_far_tail_still_has_certified_numbers(open_window, qtbot):
    window = open_window()
    far = (40.0, -35.0)  # far outside the data (bimodal: |x| of a few units)
    window.move_observation(far)

    def certified(s) -> bool:
        return s.observation is None and np.allclose(s.x_obs, far) and all(
            "amortisation_gap" in run.metrics and "amortisation_gap_k" in run.metrics
            for run in s.runs if run.k > 1) and "amortisation_gap" in s.runs[0].metrics

    snap = wait_snapshot(qtbot, window, certified, timeout=60_000, fresh=True)
    for run in snap.runs:
        m = run.metrics
        for name in ("log_px", "kl_qp", "elbo_exact"):
            assert math.isfinite(m[name]) and is_exact(m[name], m[f"{name}_err"]), (run.name, name)
        assert m["amortisation_gap"] >= -3 * m["amortisation_gap_err"] - 1e-3
        assert m["approximation_gap"] >= -3 * m["approximation_gap_err"] - 1e-3
        # the whole gap is KL(q‖p), split in two
        assert m["approximation_gap"] + m["amortisation_gap"] == pytest.approx(m["kl_qp"], abs=1e-3 + m["kl_qp_err"])
    html = window.figure.posteriors[0].gap_text.textItem.toPlainText()
    assert "amort." in html and "approx." in html


def test_a_free_point_outside_the_view_widens_it(qtbot, figure):
    import dataclasses

    snap = make_snapshot(n_runs=1, n=60)
    show(qtbot, figure, snap)
    vb = figure.data_panel.plot.getViewBox()
    (_, x1), (_, y1) = vb.viewRange()
    far = np.array([x1 + 5.0, y1 + 7.0], dtype=np.float32)
    figure.update_snapshot(dataclasses.replace(snap, observation=None, x_obs=far))
    (_, x1), (_, y1) = vb.viewRange()
    assert x1 > far[0] and y1 > far[1]
